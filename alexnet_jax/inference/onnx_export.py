"""A run's network as an ONNX graph: the JAX model itself traced by ``jax2onnx``, checked with onnxruntime.

The graph is the eval-mode forward pass (dropout off) of ``model/alexnet.AlexNet`` built from the
run's config and parameters, so every model option (towers, LRN variants, pooling, width) is exported
by the code that trains, not by a second copy of the network. Its one input ``images`` is a float32
NHWC batch (any batch size, the run's crop side and ``in_channels``) prepared as ``OUT.json``
describes; its one output ``logits`` is (batch, num_classes), before the softmax. The graph computes
in float32 whatever ``config.model.dtype`` the run trained with (onnxruntime's CPU kernels have no
bfloat16 convolution). Before the file is written, onnxruntime runs the graph on a random batch and
its logits must match the JAX model's to :data:`LOGIT_TOLERANCE` of the largest logit.

``jax2onnx``, ``onnx`` and ``onnxruntime`` are an optional extra (``requirements-onnx.txt``, installed
with ``--no-deps``: jax2onnx declares an older orbax-checkpoint than this project pins, and example
plugins it never needs here); they are imported only when an ONNX export runs.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
from flax import nnx

from alexnet_jax import errors
from alexnet_jax.model import alexnet

INPUT_NAME, OUTPUT_NAME = "images", "logits"
OPSET = 23  # ONNX opset of the graph: onnxruntime 1.31 runs it
LOGIT_TOLERANCE = 1e-4  # largest |onnxruntime - JAX| logit difference, relative to the largest |logit|
CHECK_BATCH = 2  # random images the graph is checked on before it is written
INSTALL_HINT = "pip install --no-deps -r requirements-onnx.txt"
# jax2onnx imports its example plugins too and logs a warning for each whose package (equinox, dm_pix,
# ...) is absent; onnx_ir warns about shape-helper values. Neither concerns AlexNet's graph.
NOISY_LOGGERS = ("jax2onnx", "onnx_ir")


class OnnxExportError(errors.UserError, RuntimeError):
  """The ONNX graph cannot be made or does not reproduce the JAX model; the message says why."""


def graph_options(config) -> dict:
  """The AlexNet options the graph is traced with: the run's, computed in float32."""
  return config.model.to_dict() | {"dtype": "float32"}


def eval_model(params, config) -> alexnet.AlexNet:
  """The run's AlexNet holding ``params``, in eval mode (dropout off)."""
  model = alexnet.AlexNet(**graph_options(config), rngs=nnx.Rngs(0))
  nnx.update(model, params)
  model.eval()
  return model


def graph_bytes(params, config) -> bytes:
  """The serialized ONNX model of the run's eval-mode network, checked against JAX by onnxruntime."""
  jax2onnx, onnxruntime = _import_converter()
  model = eval_model(params, config)
  side, channels = config.model.input_size, config.model.in_channels
  with _quiet(NOISY_LOGGERS):
    proto = jax2onnx.to_onnx(
      lambda images: model(images),
      [("batch", side, side, channels)],
      model_name="alexnet",
      opset=OPSET,
      input_names=[INPUT_NAME],
      output_names=[OUTPUT_NAME],
    )
  serialized = proto.SerializeToString()
  _check_logits(onnxruntime, serialized, model, side, channels)
  return serialized


def _import_converter():
  """``(jax2onnx, onnxruntime)``, or OnnxExportError naming the missing one and how to install both."""
  try:
    with _quiet(NOISY_LOGGERS):
      import jax2onnx  # pylint: disable=g-import-not-at-top -- an optional extra, only for this format
    import onnxruntime  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise OnnxExportError(f"--format=onnx needs jax2onnx and onnxruntime ({error}); {INSTALL_HINT}") from error
  return jax2onnx, onnxruntime


def _check_logits(onnxruntime, serialized: bytes, model: alexnet.AlexNet, side: int, channels: int) -> None:
  """Runs the graph on a random batch; OnnxExportError unless its logits are the JAX model's."""
  images = np.random.default_rng(0).standard_normal((CHECK_BATCH, side, side, channels)).astype(np.float32)
  expected = np.asarray(model(images))
  session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
  (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: images})
  difference = float(np.max(np.abs(actual - expected)))
  scale = max(float(np.max(np.abs(expected))), 1e-6)
  if actual.shape != expected.shape or difference > LOGIT_TOLERANCE * scale:
    raise OnnxExportError(
      f"the ONNX graph's logits {actual.shape} differ from the JAX model's {expected.shape} by up to "
      f"{difference:.3g} (largest logit {scale:.3g}, tolerance {LOGIT_TOLERANCE:g} of it); nothing was written"
    )


@contextlib.contextmanager
def _quiet(names):
  """Raises the named loggers to ERROR for the block, then restores their levels."""
  loggers = [logging.getLogger(name) for name in names]
  levels = [logger.level for logger in loggers]
  for logger in loggers:
    logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)

"""Exporting a run: a PyTorch state_dict, plain numpy arrays for any other framework, or an ONNX graph.

``torch`` (:func:`write_torch`): ``torch.save`` of the state_dict of
``alexnet_jax.yardsticks.torch_alexnet.TorchAlexNet`` (layers ``conv1`` ... ``fc8``, PyTorch layouts:
conv weights (out, in/groups, kh, kw) with ``groups=towers`` for conv2, conv4, conv5; linear weights
(out, in); fc6's inputs in NCHW flatten order), made by ``torch_alexnet.state_dict_from_jax``. Load it::

    model = TorchAlexNet(**json.load(open("OUT.json"))["model_options"])
    model.load_state_dict(torch.load("OUT"))

``npz`` (:func:`write_npz`): ``numpy.savez`` of the parameters exactly as the JAX model holds them,
float32, two arrays per layer named ``<layer>.kernel`` and ``<layer>.bias`` (layers conv1 ... conv5,
fc6, fc7, fc8). Every layer is cut into T towers (T = ``model_options["towers"]``; fc8 has one) along
its outputs, stacked on a leading axis; output unit ``j`` of tower ``t`` is the layer's unit
``t * out/T + j``:

=============================  ===========================  ===============================================
array                          shape                        meaning
=============================  ===========================  ===============================================
``convK.kernel``               (T, kh, kw, in, out/T)        HWIO; ``in`` = all input channels for conv1 and
                                                            conv3, ``in/T`` for conv2, conv4, conv5 (tower t
                                                            reads only channels ``t*in/T ...`` of the layer
                                                            below: a grouped convolution)
``convK.bias``                 (T, out/T)
``fc6.kernel``                 (T, 6*6*256 (at 227), 4096/T) inputs = pool5 (N, H, W, C) flattened in
                                                            (h, w, c) order, c over both towers' channels
``fc7.kernel``, ``fc8.kernel``  (T, in, out/T), (1, in, n)   ``y = x @ kernel[t] + bias[t]`` per tower
``fc6.bias`` ... ``fc8.bias``  (T, out/T)
=============================  ===========================  ===============================================

``onnx`` (:func:`write_onnx`): the eval-mode network as an ONNX graph (``inference/onnx_export.py``):
input ``images`` (batch, size, size, channels) float32 NHWC, output ``logits`` (batch, classes); run it
with onnxruntime, no JAX or PyTorch needed. Written only after onnxruntime reproduced the JAX logits.

Convolutions are stride/padding as in ``model/alexnet.CONV_LAYERS``; each is followed by ReLU, conv1
and conv2 by LRN (when ``lrn``; ``lrn_alpha`` is the paper's literal alpha, per tower when
``lrn_per_tower``) and max-pooling ``pool_window``/``pool_stride``.

Every format also writes ``OUT.json``: the step; ``model_options`` (for ``torch``
``TorchAlexNet``'s keyword arguments, a subset of ``AlexNet``'s; for ``npz`` the run's ``AlexNet``
options; for ``onnx`` those the graph was traced with, float32); for ``onnx`` the graph's input and
output names and opset; and the input the network expects (side, how the square was made:
``config.input.resize``, per-channel mean and std of [0, 1] pixels, and ``channels``: grey images are
replicated to RGB unless the model reads one). PyTorch is imported only by :func:`write_torch`, the
ONNX converter and runtime only by :func:`write_onnx`.
"""

from __future__ import annotations

import numpy as np

from alexnet_jax import errors, outputs
from alexnet_jax.data import options
from alexnet_jax.inference import onnx_export  # imports no converter: onnx_export.graph_bytes does
from alexnet_jax.model import alexnet
from alexnet_jax.model.options import OPTIONS

FORMATS = ("torch", "npz", "onnx")
# The AlexNet options TorchAlexNet has no argument for: the initialisation (the weights come from the
# run), the computation's dtype, and the LRN region (only "across" exports; model_options checks it).
NOT_IN_TORCH = ("lrn_region", "init", "fc8_zero_init", "dtype")
# TorchAlexNet's keyword arguments: every other option, so that a new one reaches it (or fails there).
MODEL_OPTIONS = tuple(option.name for option in OPTIONS if option.name not in NOT_IN_TORCH)


class ExportError(errors.UserError, ValueError):
  """The run cannot be written in the requested format; the message says why."""


def model_options(config) -> dict:
  """``TorchAlexNet``'s keyword arguments for the model of ``config``; ExportError for an option it lacks."""
  model = config.model
  if model.lrn and model.get("lrn_region", "across") != "across":
    raise ExportError(
      f"config.model.lrn_region={model.lrn_region!r}: the PyTorch AlexNet has only across-channel LRN; "
      "export this run with --format=npz"
    )
  return {name: model[name] for name in MODEL_OPTIONS}


def jax_arrays(params) -> dict[str, np.ndarray]:
  """The parameters as ``{"<layer>.kernel" | "<layer>.bias": float32 array}`` in the JAX layout."""
  layers = dict(zip((layer.name for layer in alexnet.CONV_LAYERS), params["convs"].values()))
  layers |= {name: params[name] for name in ("fc6", "fc7", "fc8")}
  return {
    f"{name}.{kind}": np.asarray(layer[kind][...], np.float32)
    for name, layer in layers.items()
    for kind in ("kernel", "bias")
  }


def write_torch(path: str, params, config, *, overwrite: bool = False) -> None:
  """``torch.save`` of the ``TorchAlexNet`` state_dict, checked to load into that model first."""
  try:
    import torch  # pylint: disable=g-import-not-at-top -- a test-only dependency

    from alexnet_jax.yardsticks import torch_alexnet  # pylint: disable=g-import-not-at-top -- imports torch
  except ImportError as error:
    raise ExportError(f"--format=torch needs PyTorch ({error}); pip install torch, or use --format=npz") from error
  state = {name: torch.from_numpy(np.array(value)) for name, value in torch_alexnet.state_dict_from_jax(params).items()}
  torch_alexnet.TorchAlexNet(**model_options(config)).load_state_dict(state)
  outputs.write(path, lambda f: torch.save(state, f), overwrite=overwrite)


def write_npz(path: str, params, *, overwrite: bool = False) -> None:
  """``numpy.savez`` of :func:`jax_arrays` (to ``path`` exactly, no ``.npz`` appended)."""
  outputs.write(path, lambda f: np.savez(f, **jax_arrays(params)), overwrite=overwrite)


def write_onnx(path: str, params, config, *, overwrite: bool = False) -> None:
  """The ONNX graph of the eval-mode network (``onnx_export.graph_bytes``), checked before it is written."""
  outputs.write_bytes(path, onnx_export.graph_bytes(params, config), overwrite=overwrite)


# How the square of resize_size was made (config.input.resize), in the description's words.
RESIZE_WORDS = {
  "shorter_side": "shorter side resized to resize_size, central square",
  "warp": "whole image resized to resize_size x resize_size (aspect ratio not kept)",
}


def description(config, step: int, export_format: str) -> dict:
  """What ``OUT.json`` holds: the format, step, model options and the expected input (and, for
  ``onnx``, the graph's input and output names and opset)."""
  mean, std = options.mean_std(config)
  return {
    "format": export_format,
    "step": step,
    "model_options": _described_options(config, export_format),
    "input": {
      "size": config.input.crop_size,
      "resize_size": config.input.resize_size,
      "resize": config.input.resize,
      "layout": "NCHW" if export_format == "torch" else "NHWC",
      "pixels": (
        f"{RESIZE_WORDS[config.input.resize]}, central size x size crop; pixels in [0, 1]; "
        "(x - mean) / std per channel" + _grey_note(config)
      ),
      "channels": config.model.in_channels,
      "mean": list(mean),
      "std": list(std),
      "dataset": config.dataset,
    },
  } | (_onnx_names() if export_format == "onnx" else {})


def _described_options(config, export_format: str) -> dict:
  """``TorchAlexNet``'s arguments for ``torch``, the options the graph was traced with for ``onnx``
  (float32), the run's AlexNet options for ``npz``."""
  if export_format == "torch":
    return model_options(config)
  if export_format == "onnx":
    return onnx_export.graph_options(config)
  return config.model.to_dict()


def _onnx_names() -> dict:
  """The ONNX graph's input and output names and its opset, for ``OUT.json``."""
  return {"onnx": {"input": onnx_export.INPUT_NAME, "output": onnx_export.OUTPUT_NAME, "opset": onnx_export.OPSET}}


def _grey_note(config) -> str:
  """How a grey dataset's one channel reaches the model: as it is, or replicated to RGB."""
  if options.image_channels(config.dataset) != 1:
    return ""
  if config.model.in_channels == 1:
    return " (a grey dataset: one mean and std, the grey channel as it is)"
  return f" (a grey dataset: one mean and std, then grey replicated to {config.model.in_channels} channels)"


def output_paths(path: str, *, overwrite: bool = False) -> list[str]:
  """``path`` and its description ``path.json``, both checked as outputs (``alexnet_jax/outputs.py``):
  a command calls this before it loads the run."""
  return [outputs.check(target, overwrite=overwrite) for target in (path, f"{path}.json")]


def export(path: str, params, config, step: int, export_format: str, *, overwrite: bool = False) -> list[str]:
  """Writes ``path`` in ``export_format`` and its description ``path.json``; returns both paths.
  Existing files are replaced only when ``overwrite``."""
  if export_format not in FORMATS:
    raise ExportError(f"--format={export_format!r}: expected one of {', '.join(FORMATS)}")
  paths = output_paths(path, overwrite=overwrite)
  if export_format == "torch":
    write_torch(path, params, config, overwrite=overwrite)
  elif export_format == "onnx":
    write_onnx(path, params, config, overwrite=overwrite)
  else:
    write_npz(path, params, overwrite=overwrite)
  outputs.write_json(paths[1], description(config, step, export_format), overwrite=overwrite)
  return paths

"""``export --format=onnx``: the ONNX graph run by onnxruntime gives the JAX model's logits.

Each model variant (one and two towers, LRN across channels, within a channel, per tower or over both
towers, before the ReLU, or off; a bfloat16 run) is exported in-process with random parameters and
checked on a batch of another size than the export's own check. The command line on a trained run is
in ``tests/test_inference.py``.
"""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from alexnet_jax.inference import export, onnx_export
from alexnet_jax.train import state
from experiments import fashion_mnist

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

VARIANTS = {
  "two_towers_lrn_per_tower": {},
  "two_towers_lrn_over_both": {"lrn_per_tower": False},
  "one_tower": {"towers": 1},
  "lrn_within_channel": {"lrn_region": "within"},
  "lrn_before_relu": {"lrn_position": "before_relu", "lrn_per_tower": False},
  "no_lrn_rgb": {"lrn": False, "in_channels": 3},
}


def _config(**model_options):
  config = fashion_mnist.get_config("smoke")
  config.model.update(model_options)
  return config


def _random_params(config, seed):
  """The model's parameters plus noise: fc8 starts at zero in the smoke recipe, and random biases make a
  mis-wired layer show."""
  model = state.create_model(config, nnx.Rngs(seed))
  noise = np.random.default_rng(seed)
  return jax.tree.map(
    lambda x: x + 0.05 * noise.standard_normal(x.shape).astype(np.float32), nnx.state(model, nnx.Param)
  )


def _onnx_logits(path, images):
  session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
  assert [i.name for i in session.get_inputs()] == ["images"]
  (logits,) = session.run(["logits"], {"images": images})
  return logits


def _assert_same_logits(actual, expected):
  """Within 1e-4 relative, measured against the largest logit where a logit is near zero."""
  assert actual.shape == expected.shape
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


# The paper's net in the quick subset; the other variants (each a conversion of ~5 s) in the full suite.
@pytest.mark.parametrize(
  "variant", [name if i == 0 else pytest.param(name, marks=pytest.mark.slow) for i, name in enumerate(VARIANTS)]
)
def test_onnx_graph_gives_the_jax_logits(variant, tmp_path):
  config = _config(**VARIANTS[variant])
  params = _random_params(config, seed=len(variant))
  path = tmp_path / "m.onnx"
  export.export(str(path), params, config, 7, "onnx")

  model = onnx_export.eval_model(params, config)
  images = np.random.default_rng(1).standard_normal((3, 67, 67, config.model.in_channels)).astype(np.float32)
  expected = np.asarray(model(images))
  assert np.abs(expected).max() > 1.0  # logits of some size, not the zero-init fc8's
  _assert_same_logits(_onnx_logits(path, images), expected)
  with open(f"{path}.json") as f:
    description = json.load(f)
  assert description["onnx"] == {"input": "images", "output": "logits", "opset": onnx_export.OPSET}
  assert description["input"]["layout"] == "NHWC" and description["model_options"]["towers"] == config.model.towers


@pytest.mark.slow
def test_a_bfloat16_run_exports_a_float32_graph(tmp_path):
  config = _config(dtype="bfloat16")
  params = _random_params(_config(), seed=3)
  export.export(str(tmp_path / "m.onnx"), params, config, 1, "onnx")
  images = np.random.default_rng(2).standard_normal((2, 67, 67, 1)).astype(np.float32)
  expected = np.asarray(onnx_export.eval_model(params, _config())(images))  # the float32 model
  _assert_same_logits(_onnx_logits(tmp_path / "m.onnx", images), expected)
  with open(tmp_path / "m.onnx.json") as f:
    assert json.load(f)["model_options"]["dtype"] == "float32"


def test_a_graph_that_disagrees_with_jax_is_not_written(tmp_path, monkeypatch):
  import jax2onnx

  convert = jax2onnx.to_onnx
  monkeypatch.setattr(jax2onnx, "to_onnx", lambda fn, *args, **kwargs: convert(lambda x: fn(x) + 1.0, *args, **kwargs))
  config = _config()
  with pytest.raises(onnx_export.OnnxExportError, match=r"differ from the JAX model's .* nothing was written"):
    export.export(str(tmp_path / "m.onnx"), _random_params(config, seed=0), config, 1, "onnx")
  assert list(tmp_path.iterdir()) == []


def test_a_missing_converter_is_one_error_naming_the_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import jax2onnx raises ImportError
  config = _config()
  with pytest.raises(onnx_export.OnnxExportError) as raised:
    export.export(str(tmp_path / "m.onnx"), _random_params(config, seed=0), config, 1, "onnx")
  assert str(raised.value).startswith("--format=onnx needs jax2onnx and onnxruntime (")
  assert str(raised.value).endswith("; pip install --no-deps -r requirements-onnx.txt")
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_predict_and_export_import_no_onnx_package_until_an_onnx_export_runs():
  code = (
    "import sys; import alexnet_jax.predict, alexnet_jax.export, alexnet_jax.inference.export; "
    "import alexnet_jax.inference.prediction; "
    "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax2onnx', 'onnx', 'onnx_ir', 'onnxruntime')))"
  )
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "[]"

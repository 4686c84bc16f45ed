"""The architecture's boundaries: what each part of the library may import.

The model, the mesh code and the train step must import without TensorFlow (the GPU machines have no
TF, and tf.data belongs to the host-side input pipeline), and no library module may pull in PyTorch
(a test-only dependency) except the PyTorch yardstick itself. Each import runs in a fresh interpreter,
so what another test imported cannot hide a leak.
"""

import json
import os
import pkgutil
import subprocess
import sys

import alexnet_jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_FREE = (
  "alexnet_jax.model.alexnet",
  "alexnet_jax.parallel.sharding",
  "alexnet_jax.train.steps",
  "alexnet_jax.train.state",
  "alexnet_jax.train.optimizers",
  "alexnet_jax.config.validation",
  "alexnet_jax.yardsticks.benchmark",
  "alexnet_jax.inference.trained_run",
  "alexnet_jax.inference.export",
  "alexnet_jax.export",
)
TORCH_MODULE = "alexnet_jax.yardsticks.torch_alexnet"


def _library_modules() -> list[str]:
  return sorted(info.name for info in pkgutil.walk_packages(alexnet_jax.__path__, "alexnet_jax."))


def _loaded_after_import(modules: list[str], watched: tuple[str, ...]) -> dict[str, list[str]]:
  """Imports ``modules`` in turn in a fresh interpreter; for each, which of ``watched`` are loaded
  once it is imported (cumulative: the first module that lists one is the one that pulled it in)."""
  script = (
    "import importlib, json, sys\n"
    f"watched, result = {watched!r}, {{}}\n"
    f"for name in {modules!r}:\n"
    "  importlib.import_module(name)\n"
    "  result[name] = [w for w in watched if w in sys.modules]\n"
    "print(json.dumps(result))\n"
  )
  output = subprocess.run(
    [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=300
  ).stdout
  return json.loads(output.splitlines()[-1])


def test_the_package_has_the_documented_sub_packages():
  names = set(_library_modules())
  for package in ("model", "parallel", "data", "train", "config", "sweeps", "yardsticks", "inference"):
    assert f"alexnet_jax.{package}" in names


def test_model_mesh_and_train_step_import_without_tensorflow():
  loaded = _loaded_after_import(list(TF_FREE), ("tensorflow", "tensorflow_datasets", "torch"))
  assert loaded == {module: [] for module in TF_FREE}


def test_no_library_module_but_the_pytorch_yardstick_imports_torch():
  # The input benchmark defines --config as main does: absl allows one per process.
  own_flags = ("alexnet_jax.benchmark_input", "alexnet_jax.yardsticks.input_benchmark")
  modules = [name for name in _library_modules() if name != TORCH_MODULE and name not in own_flags]
  for group in (modules, list(own_flags)):
    loaded = _loaded_after_import(group, ("torch",))
    assert {name: found for name, found in loaded.items() if found} == {}
  assert _loaded_after_import([TORCH_MODULE], ("torch",))[TORCH_MODULE] == ["torch"]

"""The architecture's boundaries: what each part of the library may import.

The model, the mesh code, the train step and the whole data layer must import and run without
TensorFlow (the GPU machines have no TF; TFDS reads ArrayRecord without it), and no library module may
pull in PyTorch (a test-only dependency) except the PyTorch yardstick itself. Each import runs in a
fresh interpreter, so what another test imported cannot hide a leak. Where TensorFlow is installed,
no process of a command imports it either (its spawned workers included: a tripwire in each).
"""

import ast
import glob
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import alexnet_jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_FREE = (
  "alexnet_jax.model.alexnet",
  "alexnet_jax.parallel.sharding",
  "alexnet_jax.train.steps",
  "alexnet_jax.train.state",
  "alexnet_jax.train.optimizers",
  "alexnet_jax.train.validation",
  "alexnet_jax.data.registry",
  "alexnet_jax.data.data_dirs",
  "alexnet_jax.yardsticks.benchmark",
  "alexnet_jax.inference.trained_run",
  "alexnet_jax.inference.export",
  "alexnet_jax.export",
)
# The data layer reads datasets with TFDS, which needs no TensorFlow to read ArrayRecord files.
TF_FREE_DATA = (
  "alexnet_jax.data.datasets",
  "alexnet_jax.data.fashion_mnist_offline",
  "alexnet_jax.data.input_spec",
  "alexnet_jax.data.loader",
  "alexnet_jax.data.augment",
  "alexnet_jax.data.images",
  "alexnet_jax.data.store",
  "alexnet_jax.data.prepare_store",
  "alexnet_jax.data.ilsvrc_tars",
  "alexnet_jax.inference.prediction",
  "alexnet_jax.inference.evaluation",
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


@pytest.mark.slow
def test_model_mesh_and_train_step_import_without_tensorflow():
  loaded = _loaded_after_import(list(TF_FREE), ("tensorflow", "tensorflow_datasets", "torch"))
  assert loaded == {module: [] for module in TF_FREE}


@pytest.mark.slow
def test_the_data_layer_and_inference_import_without_tensorflow():
  loaded = _loaded_after_import(list(TF_FREE_DATA), ("tensorflow", "torch"))
  assert loaded == {module: [] for module in TF_FREE_DATA}


@pytest.mark.slow
def test_no_library_module_but_the_pytorch_yardstick_imports_torch():
  # The input benchmark defines --config as main does: absl allows one per process.
  own_flags = ("alexnet_jax.benchmark_input", "alexnet_jax.yardsticks.input_benchmark")
  modules = [name for name in _library_modules() if name != TORCH_MODULE and name not in own_flags]
  for group in (modules, list(own_flags)):
    loaded = _loaded_after_import(group, ("torch",))
    assert {name: found for name, found in loaded.items() if found} == {}
  assert _loaded_after_import([TORCH_MODULE], ("torch",))[TORCH_MODULE] == ["torch"]


def imports_of_experiments(source: str) -> list[int]:
  """Lines of ``source`` that import the ``experiments`` package: ``import``/``from`` statements, and
  ``importlib.import_module`` or ``__import__`` of a name (an f-string's leading text too) in it."""
  lines = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      names = [node.module or ""] if node.level == 0 else []
    elif isinstance(node, ast.Call) and node.args and ast.unparse(node.func).endswith(("import_module", "__import__")):
      first = node.args[0]
      head = first.values[0] if isinstance(first, ast.JoinedStr) and first.values else first
      names = [head.value] if isinstance(head, ast.Constant) and isinstance(head.value, str) else []
    else:
      continue
    if any(name == "experiments" or name.startswith("experiments.") for name in names):
      lines.append(node.lineno)
  return lines


def test_the_library_does_not_import_the_experiments():
  """The configs build on the library, never the other way round: a trained run reads its own config.json."""
  planted = 'import experiments\nfrom experiments import common\nimportlib.import_module(f"experiments.{name}")\n'
  assert imports_of_experiments(planted) == [1, 2, 3]
  found = {}
  for path in glob.glob(os.path.join(REPO, "alexnet_jax", "**", "*.py"), recursive=True):
    with open(path) as f:
      if lines := imports_of_experiments(f.read()):
        found[os.path.relpath(path, REPO)] = lines
  assert found == {}


# Prepares the offline Fashion-MNIST (IDX files written here) and serves train and eval batches,
# then says which of tensorflow / torch got loaded.
DATA_LAYER_SCRIPT = """
import gzip, json, os, sys, tempfile
import numpy as np
from alexnet_jax.data import augment, input_spec, loader
from alexnet_jax.data import fashion_mnist_offline as offline
from experiments import fashion_mnist

source, data_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
rng = np.random.default_rng(0)
for split, (images_file, labels_file) in offline.SPLIT_FILES.items():
  for name, array in ((images_file, rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)),
                      (labels_file, rng.integers(0, 10, 40, dtype=np.uint8))):
    header = (2051 if array.ndim == 3 else 2049).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(os.path.join(source, name), "wb") as f:
      f.write(header + array.tobytes())
offline.prepare_fashion_mnist(data_dir, source)
config = fashion_mnist.get_config("smoke")
config.data_dir, config.batch_size = data_dir, 8
spec = input_spec.build(config)
train = next(loader.train_batches(spec, start_step=3))
evaluation = list(loader.eval_batches(spec))
views = augment.train_inputs(spec, train, 3)
print(json.dumps({"shape": list(views.shape), "eval_batches": len(evaluation),
                  "loaded": [m for m in ("tensorflow", "torch") if m in sys.modules]}))
"""


@pytest.mark.slow
def test_the_data_layer_prepares_and_serves_batches_without_tensorflow():
  output = subprocess.run(
    [sys.executable, "-c", DATA_LAYER_SCRIPT], cwd=REPO, capture_output=True, text=True, check=True, timeout=300
  ).stdout
  result = json.loads(output.splitlines()[-1])
  assert result == {"shape": [8, 67, 67, 1], "eval_batches": 5, "loaded": []}


# With TensorFlow made unimportable, a user's whole round: mock datasets prepared, a :smoke run
# trained (TensorBoard events included), read back, evaluated, a PNG predicted, the figures drawn,
# the weights exported, the run's curves read as the sweep report reads them and its HParams written.
WITHOUT_TENSORFLOW_SCRIPT = """
import sys
import json, os, tempfile
import numpy as np
from PIL import Image
sys.path.insert(0, "tests")
from support import mock_inputs
from alexnet_jax.inference import evaluation, export, figures, prediction, trained_run
from alexnet_jax.sweeps import report
from alexnet_jax.train import loop
from experiments import fashion_mnist

with mock_inputs.mock_data():
  workdir, out = tempfile.mkdtemp(), tempfile.mkdtemp()
  loop.train_and_evaluate(fashion_mnist.get_config("smoke"), workdir)
  run = trained_run.load(workdir)
  report_ = evaluation.evaluate(run)
  Image.fromarray(np.zeros((40, 30), np.uint8)).save(os.path.join(out, "grey.png"))
  predicted = prediction.predict_files(run, [os.path.join(out, "grey.png")])
  drawn = figures.write_all(run, out, examples=4, queries=2, pool=16)
  exported = export.export(os.path.join(out, "weights.npz"), run.params, run.config, run.step, "npz")
  curves = report.read_curves(workdir)
  finished = report.RunResult("seed=0", {"seed": 0}, workdir, json.load(open(os.path.join(workdir, "summary.json"))))
  hparams = report.write_hparams([finished], out)
assert "tensorflow" not in sys.modules
print(json.dumps({"count": report_["count"], "predictions": len(predicted[0]["predictions"]),
                  "figures": len(drawn), "exported": len(exported), "curves": "train_loss" in curves,
                  "hparams": sorted(name.split(".")[0] for name in os.listdir(hparams))}))
"""


def site_packages_without_tensorflow(folder) -> str:
  """A folder of links to every installed package but TensorFlow's: with it as the only site
  (``python -S``), ``import tensorflow`` fails and ``find_spec`` finds nothing, as where TF is absent."""
  import site

  (packages,) = [p for p in site.getsitepackages() if os.path.isdir(p)][:1]
  for name in os.listdir(packages):
    if name != "tensorflow" and not name.startswith("tensorflow_cpu"):  # TF itself and its metadata
      os.symlink(os.path.join(packages, name), os.path.join(folder, name))
  return str(folder)


def run_without_tensorflow(tmp_path, script: str, *args: str):
  """Runs ``script`` (``python -S -c``) where TensorFlow is not installed, as in a venv made from
  requirements.txt (spawned workers inherit it); returns the JSON of its last line of output."""
  (tmp_path / "site").mkdir()
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, site_packages_without_tensorflow(tmp_path / "site")])}
  done = subprocess.run(
    [sys.executable, "-S", "-c", script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert done.returncode == 0, done.stderr[-4000:]
  return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_train_evaluate_predict_figures_export_and_report_run_without_tensorflow(tmp_path):
  result = run_without_tensorflow(tmp_path, WITHOUT_TENSORFLOW_SCRIPT)
  expected = {"count": 64, "predictions": 5, "figures": 3, "exported": 2, "curves": True}
  assert result == {**expected, "hparams": ["events", "seed=0"]}  # the sweep's config and the run's session


# ImageNet's store prepared from fake ILSVRC-2012 tars (in the folder given as argv[1]) on two spawned
# workers; run with TensorFlow unimportable, which the workers inherit (``-S`` and PYTHONPATH).
PREPARE_STORE_SCRIPT = """
import json, os, sys
sys.path.insert(0, "tests")
from support import fake_ilsvrc
from alexnet_jax.data import prepare_store, store
from experiments import imagenet2012

folder = sys.argv[1]
fake_ilsvrc.write_tars(os.path.join(folder, "manual"))
config = imagenet2012.get_config("smoke")
config.data_dir, config.manual_dir = os.path.join(folder, "tfds"), os.path.join(folder, "manual")
path = prepare_store.prepare(config, workers=2, images_per_shard=2, progress=False)
splits = {name: split.num_examples for name, split in store.load(path).info.splits.items()}
print(json.dumps({"splits": splits, "loaded": [m for m in ("tensorflow",) if m in sys.modules]}))
"""


@pytest.mark.slow
def test_prepare_store_makes_imagenets_store_from_the_tars_without_tensorflow(tmp_path):
  assert run_without_tensorflow(tmp_path, PREPARE_STORE_SCRIPT, str(tmp_path)) == {
    "splits": {"train": 19, "validation": 5},
    "loaded": [],
  }


TRIPWIRE = os.path.join(REPO, "tests", "support", "tensorflow_tripwire")


def run_under_tripwire(tmp_path, *command: str) -> str:
  """Runs ``python -m alexnet_jax.COMMAND ...`` with every process it starts watched for ``import
  tensorflow`` (``tests/support/tensorflow_tripwire``); returns what the tripwire recorded."""
  record = tmp_path / "tensorflow_imports.txt"
  record.touch()
  env = {**os.environ, "PYTHONPATH": TRIPWIRE, "TENSORFLOW_TRIPWIRE": str(record)}
  done = subprocess.run(
    [sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert done.returncode == 0, done.stderr[-4000:]
  return record.read_text()


def test_the_tripwire_records_an_import_of_tensorflow_and_not_a_look_for_it(tmp_path):
  record = tmp_path / "tensorflow_imports.txt"
  env = {**os.environ, "PYTHONPATH": TRIPWIRE, "TENSORFLOW_TRIPWIRE": str(record)}
  script = "import importlib.util\nassert importlib.util.find_spec('tensorflow')\nimport tensorflow\n"
  done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
  assert "ImportError: tensorflow: imported under tests/support/tensorflow_tripwire" in done.stderr
  assert record.read_text().count("imported tensorflow") == 1


def write_fake_fashion_mnist(folder, num_train: int) -> str:
  """Fashion-MNIST's four IDX files with ``num_train`` train and 64 test images, in ``folder``."""
  from support import idx_files

  from alexnet_jax.data import fashion_mnist_offline

  for split, count in (("train", num_train), ("test", 64)):
    images_file, labels_file = fashion_mnist_offline.SPLIT_FILES[split]
    idx_files.write_idx(folder / images_file, np.broadcast_to(np.arange(count)[:, None, None] % 256, (count, 28, 28)))
    idx_files.write_idx(folder / labels_file, np.arange(count) % 10)
  return str(folder)


@pytest.mark.slow
def test_no_process_of_the_commands_imports_tensorflow_where_it_is_installed(tmp_path):
  """Converting Fashion-MNIST, a :smoke run (its train split large enough to be decoded by spawned
  worker processes, ``loader.squares_in_memory``) and evaluating it: TensorBoard's writer and TFDS import
  TensorFlow whenever they can, unless told not to."""
  from alexnet_jax.data import loader

  if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("TensorFlow is not installed: no process can import it")
  (tmp_path / "idx").mkdir()
  source = write_fake_fashion_mnist(tmp_path / "idx", 2 * loader.PARALLEL_DECODE_MIN_IMAGES)
  data_dir, workdir = str(tmp_path / "tfds"), str(tmp_path / "run")
  config = ["--config=experiments/fashion_mnist.py:smoke", f"--config.data_dir={data_dir}"]
  commands = (
    ("alexnet_jax.data.fashion_mnist_offline", f"--source_dir={source}", f"--data_dir={data_dir}"),
    ("alexnet_jax.main", f"--workdir={workdir}", *config),
    ("alexnet_jax.evaluate", f"--workdir={workdir}"),
  )
  assert {command[0]: run_under_tripwire(tmp_path, *command) for command in commands} == {
    command[0]: "" for command in commands
  }

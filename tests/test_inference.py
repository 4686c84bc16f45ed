"""Using a trained run: evaluate, predict, figures and export through their command lines.

One ``:smoke`` run is trained once for the module (mock data, ``tests/support/mock_data_main.py``); each
command runs on its work directory as a user would run it. The export's parity with the PyTorch
AlexNet is checked in-process for two towers and one; the ONNX variants in ``tests/test_onnx_export.py``.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from support import smoke_run

from alexnet_jax.data import augment, images
from alexnet_jax.inference import export, figures, prediction, trained_run
from alexnet_jax.train import checkpoints, state, steps, summaries, validation
from experiments import fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")
FASHION_NAMES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]


def run_command(*args, mock=True, timeout=300):
  """``tests/support/mock_data_main.py COMMAND ...`` (mock data), or ``python -m alexnet_jax.COMMAND ...``."""
  command = [ON_MOCK_DATA, *args] if mock else ["-m", f"alexnet_jax.{args[0]}", *args[1:]]
  return subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return smoke_run.train(tmp_path_factory.mktemp("smoke"))


@pytest.mark.slow
def test_evaluate_reports_what_the_run_logged_and_counts_per_class(workdir):
  result = run_command("evaluate", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "eval_test_4_center_flip.json")) as f:  # the recipe's test views
    report = json.load(f)
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert (report["step"], report["split"], report["crops"], report["count"]) == (4, "test", "center_flip", 64)
  assert report["weights"] == "average"  # the recipe's moving average, which the run's evaluations report
  assert report["loss"] == pytest.approx(summary["eval_loss"], rel=1e-5)
  assert report["top1_error"] == pytest.approx(summary["eval_top1_error"])
  assert 0.0 <= report["top1_accuracy"] <= report["top5_accuracy"] <= 1.0
  confusion = np.asarray(report["confusion_matrix"])
  assert confusion.shape == (10, 10) and confusion.sum() == 64
  assert np.trace(confusion) / 64 == pytest.approx(report["top1_accuracy"])
  per_class = report["per_class"]
  assert [c["name"] for c in per_class] == FASHION_NAMES
  assert [c["examples"] for c in per_class] == confusion.sum(axis=1).tolist()
  for c, row in zip(per_class, confusion):
    assert c["accuracy"] == (row[c["label"]] / row.sum() if row.sum() else None)
  assert Image.open(os.path.join(workdir, "eval_test_4_center_flip_confusion.png")).size[0] > 300
  assert "top-1 accuracy" in result.stdout and "Ankle boot" in result.stdout


@pytest.mark.slow
def test_evaluate_refuses_a_workdir_without_checkpoints(workdir, tmp_path):
  shutil.copy(os.path.join(workdir, "config.json"), tmp_path)
  result = run_command("evaluate", f"--workdir={tmp_path}", mock=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    f"error: --workdir={tmp_path} has no checkpoints (no {tmp_path}/checkpoints); train the run first"
  )
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == ["config.json"]


@pytest.mark.slow
def test_a_missing_step_or_config_is_refused(workdir, tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match=r"no checkpoint of step 3 \(steps there: 2, 4\)"):
    trained_run.load(workdir, step=3)
  with pytest.raises(trained_run.RunError, match="holds no run"):
    trained_run.load(str(tmp_path))
  assert trained_run.load(workdir, step=2).step == 2


def _write_images(directory):
  """A colour JPEG and PNG, a grey JPEG and PNG of other sizes, and a file that is no image."""
  rng = np.random.default_rng(0)
  paths = {
    "colour.jpg": rng.integers(0, 256, (40, 90, 3), dtype=np.uint8),
    "colour.png": rng.integers(0, 256, (300, 200, 4), dtype=np.uint8),  # with alpha
    "grey.jpg": rng.integers(0, 256, (28, 28), dtype=np.uint8),
    "grey.png": rng.integers(0, 256, (17, 64), dtype=np.uint8),
  }
  for name, pixels in paths.items():
    Image.fromarray(pixels).save(directory / name)
  (directory / "notes.png").write_text("not an image")
  return [str(directory / name) for name in ["colour.jpg", "notes.png", "colour.png", "grey.jpg", "grey.png"]]


@pytest.mark.slow
def test_predict_gives_top5_names_and_reports_an_unreadable_file(workdir, tmp_path):
  files = _write_images(tmp_path)
  result = run_command("predict", f"--workdir={workdir}", "--json", *files)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    f"error: {files[1]}: not a readable image (not a format PIL reads: JPEG, PNG, GIF, BMP, WebP, TIFF, ...)"
  ]
  results = json.loads(result.stdout)
  assert [r["file"] for r in results] == files
  assert "error" in results[1] and "predictions" not in results[1]
  for r in results[:1] + results[2:]:
    probabilities = [p["probability"] for p in r["predictions"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert 0.0 < sum(probabilities) <= 1.0 + 1e-6
    assert all(FASHION_NAMES[p["label"]] == p["name"] for p in r["predictions"])


@pytest.mark.slow
def test_predict_prepares_an_image_file_as_the_loader_prepares_a_test_image(workdir, tmp_path, mock_data):
  from alexnet_jax.data import input_spec

  spec = input_spec.build(trained_run.read_config(workdir))
  batch = next(mock_data.eval_batches(spec))
  source = spec.source(spec.eval_split)
  raw = [images.decode(source[index]["image"], 1) for index in range(3)]
  for index, pixels in enumerate(raw):
    path = str(tmp_path / f"test{index}.png")
    Image.fromarray(pixels[..., 0]).save(path)
    loaded = prediction.load_image(path, channels=1)
    np.testing.assert_array_equal(loaded, pixels)
    np.testing.assert_array_equal(images.central_square(loaded, spec.resize_size), batch["image"][index])
  colour = np.repeat(raw[0], 3, axis=-1)
  Image.fromarray(colour).save(tmp_path / "colour.png")
  np.testing.assert_array_equal(prediction.load_image(str(tmp_path / "colour.png"), channels=1), raw[0])


@pytest.mark.slow
def test_figures_are_small_pngs_of_the_declared_sizes(workdir, tmp_path):
  out = tmp_path / "figures"
  result = run_command("figures", f"--workdir={workdir}", f"--out={out}", "--neighbour_pool=64", "--examples=6")
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(out)) == sorted(figures.FILES.values())
  sizes = {name: Image.open(out / file).size for name, file in figures.FILES.items()}
  inches = {"left": figures.figure4_left_size(6), "right": figures.figure4_right_size(5)}
  for name, (width, height) in inches.items():
    assert sizes[name] == (round(width * figures.DPI), round(height * figures.DPI))
  grid = summaries.kernel_grid(np.zeros((11, 11, 3, 6)))  # width 0.125: 6 conv1 kernels per tower
  assert sizes["figure3"] == (grid.shape[1], 2 * grid.shape[0] + grid.shape[0] // 8 + 1)
  assert all(os.path.getsize(out / file) < 300_000 for file in figures.FILES.values())


def test_nearest_neighbours_are_the_closest_in_euclidean_distance():
  rng = np.random.default_rng(0)
  queries, pool = rng.standard_normal((4, 8)), rng.standard_normal((50, 8))
  expected = np.argsort(np.linalg.norm(queries[:, None] - pool[None], axis=-1), axis=1)[:, :6]
  np.testing.assert_array_equal(figures.nearest_neighbours(queries, pool), expected)


@pytest.mark.slow
def test_exported_torch_model_gives_the_runs_logits(workdir, tmp_path):
  torch = pytest.importorskip("torch")
  from alexnet_jax.yardsticks.torch_alexnet import TorchAlexNet

  path = str(tmp_path / "alexnet.pt")
  result = run_command("export", f"--workdir={workdir}", "--format=torch", path, mock=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(f"{path}.json") as f:
    description = json.load(f)
  assert description["step"] == 4 and description["input"]["size"] == 67
  model = TorchAlexNet(**description["model_options"])
  model.load_state_dict(torch.load(path))
  run = trained_run.load(workdir)
  channels = run.config.model.in_channels  # the recipe's grey conv1: 1
  assert description["model_options"]["in_channels"] == description["input"]["channels"] == channels
  assert "the grey channel as it is" in description["input"]["pixels"]
  images = np.random.default_rng(0).standard_normal((4, 67, 67, channels)).astype(np.float32)
  log_probs = steps.eval_log_probs(run.params, images, model_def=run.model_def, mesh=run.mesh)
  _assert_same_logits(torch, model, np.exp(log_probs), images, softmax=True)


@pytest.mark.slow
def test_exported_onnx_graph_gives_the_runs_logits(workdir, tmp_path):
  onnxruntime = pytest.importorskip("onnxruntime")
  pytest.importorskip("jax2onnx")
  path = str(tmp_path / "alexnet.onnx")
  result = run_command("export", f"--workdir={workdir}", "--format=onnx", path, mock=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "WARNING" not in result.stderr  # jax2onnx's noise about example plugins is kept quiet
  with open(f"{path}.json") as f:
    description = json.load(f)
  assert (description["format"], description["step"], description["input"]["layout"]) == ("onnx", 4, "NHWC")
  run = trained_run.load(workdir)
  images = np.random.default_rng(3).standard_normal((5, 67, 67, run.config.model.in_channels)).astype(np.float32)
  expected = np.asarray(run.model_def.eval_model(run.params)(images))  # eval mode: dropout off
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  (actual,) = session.run([description["onnx"]["output"]], {description["onnx"]["input"]: images})
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("towers,in_channels", [(2, 1), (1, 3)])
def test_export_round_trip_torch_and_npz(towers, in_channels, tmp_path):
  torch = pytest.importorskip("torch")
  from alexnet_jax.yardsticks.torch_alexnet import TorchAlexNet

  config = fashion_mnist.get_config("smoke")
  config.model.towers, config.model.in_channels = towers, in_channels
  model = state.create_model(config, nnx.Rngs(towers))
  params = jax.tree.map(  # random biases too: a mis-ordered copy of any parameter shows
    lambda x: x + 0.05 * np.random.default_rng(towers).standard_normal(x.shape, np.float32),
    nnx.state(model, nnx.Param),
  )
  nnx.update(model, params)
  model.eval()
  images = np.random.default_rng(1).standard_normal((3, 67, 67, in_channels)).astype(np.float32)
  expected = np.asarray(model(images))

  export.export(str(tmp_path / "m.pt"), params, config, 7, "torch")
  reference = TorchAlexNet(**export.model_options(config))
  reference.load_state_dict(torch.load(tmp_path / "m.pt"))
  _assert_same_logits(torch, reference, expected, images)

  export.export(str(tmp_path / "m.npz"), params, config, 7, "npz")
  arrays = np.load(tmp_path / "m.npz")
  assert sorted(arrays) == sorted(
    f"{layer}.{kind}" for layer in export.alexnet.LAYER_NAMES for kind in ("kernel", "bias")
  )
  np.testing.assert_array_equal(arrays["conv2.kernel"], np.asarray(params["convs"][1]["kernel"][...]))
  np.testing.assert_array_equal(arrays["fc8.bias"], np.asarray(params["fc8"]["bias"][...]))
  assert arrays["conv1.kernel"].shape[0] == towers and arrays["conv1.kernel"].shape[3] == in_channels


def _assert_same_logits(torch, reference, expected, images, softmax=False):
  reference.eval()
  with torch.no_grad():
    logits = reference(torch.from_numpy(images).permute(0, 3, 1, 2))
  actual = (torch.softmax(logits, dim=-1) if softmax else logits).numpy()
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("towers", [2, 1])
def test_fc7_features_are_what_fc8_reads(towers):
  config = fashion_mnist.get_config("smoke")
  config.model.towers = towers
  model = state.create_model(config, nnx.Rngs(0))
  model.eval()
  images = np.random.default_rng(2).standard_normal((2, 67, 67, config.model.in_channels)).astype(np.float32)
  features = model.fc7_features(images)
  assert features.shape == (2, 512) and float(features.min()) >= 0.0  # after the ReLU
  (logits,) = model.fc8(features)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(model(images)), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_evaluate_names_the_splits_when_one_is_unknown(workdir, mock_data):
  run = trained_run.load(workdir, overrides={"eval_split": "train[:10%]+validation"})
  with pytest.raises(
    validation.ConfigError, match=r"cannot be read from fashion_mnist .*splits are \['test', 'train'\]"
  ):
    _ = run.spec
  known = trained_run.load(workdir, overrides={"eval_split": "train[:10%]+test", "eval_max_examples": -1})
  assert known.spec.num_eval == 6 + 64  # 10 % of the mock's 64 train examples, and its 64 test ones


@pytest.mark.slow
def test_ten_crop_evaluation_and_prediction(workdir, mock_data):
  from alexnet_jax.inference import evaluation

  run = trained_run.load(workdir, overrides={"input.eval_crops": "ten_crop", "eval_max_examples": 16})
  report = evaluation.evaluate(run)
  assert (report["crops"], report["count"], np.asarray(report["confusion_matrix"]).sum()) == ("ten_crop", 16, 16)
  assert 0.0 <= report["top1_accuracy"] <= report["top5_accuracy"] <= 1.0
  assert "ten crops" in evaluation.format_report(report)
  square = images.central_square(np.zeros((30, 40, 1), np.uint8), run.spec.resize_size)
  assert square.shape == (72, 72, 1)
  views = augment.eval_views(square[None], run.spec)
  assert views.shape == (1, 10, 67, 67, run.config.model.in_channels)
  probabilities = np.exp(run.log_probs(square[None]))
  np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
  "dataset,in_channels,expected",
  [
    ("fashion_mnist", 1, "the grey channel as it is"),
    ("fashion_mnist", 3, "replicated to 3 channels"),
    ("cifar10", 3, ""),
  ],
)
def test_export_description_says_how_grey_reaches_the_model(dataset, in_channels, expected):
  config = fashion_mnist.get_config()
  config.dataset, config.model.in_channels = dataset, in_channels
  pixels = export.description(config, step=1, export_format="npz")["input"]["pixels"]
  assert pixels.endswith("per channel") if not expected else expected in pixels


@pytest.mark.slow
def test_a_second_predict_compiles_nothing_the_first_compiled(workdir, tmp_path):
  Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "grey.png")
  cache = tmp_path / "jit_cache"

  def cached_programs(*flags):
    result = run_command("predict", f"--workdir={workdir}", *flags, str(tmp_path / "grey.png"))
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted(os.listdir(cache)) if cache.exists() else []

  first = cached_programs(f"--compilation_cache={cache}")
  assert first  # the run's programs are in the cache ...
  assert cached_programs(f"--compilation_cache={cache}") == first  # ... and a second call adds none
  shutil.rmtree(cache)
  assert cached_programs("--compilation_cache=off") == []

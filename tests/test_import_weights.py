"""The reference AlexNets imported (``python -m alexnet_jax.import_weights``) predict what their own
frameworks predict: torchvision's ``alexnet()`` on its own transforms, and BVLC's net with Caffe's
semantics (in PyTorch, written as caffemodels in both of Caffe's layouts by ``support/reference_nets``).

Random weights with fc8 scaled up, so that the probabilities are far from uniform (a uniform 1/1000
would meet a 1e-3 tolerance by itself); pictures of several shapes, made here.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from support import reference_nets

from alexnet_jax.data import images
from alexnet_jax.inference import imagenet_classes, prediction, trained_run
from alexnet_jax.model import layers
from alexnet_jax.train import run_dir
from alexnet_jax.weights import caffemodel, imported_run, layouts, protobuf_wire, references, torch_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {"square": (300, 300), "exact": (256, 256), "wide": (240, 400), "tall": (500, 261)}
SQUARE = ("square", "exact")
FC8_SCALE = 400.0  # random fc8 weights times this: the top probabilities reach several percent


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
  """name -> path of a smooth random RGB picture (PNG) of each shape of :data:`SHAPES`."""
  folder, rng, paths = tmp_path_factory.mktemp("pictures"), np.random.default_rng(0), {}
  for name, (height, width) in SHAPES.items():
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8))
    paths[name] = str(folder / f"{name}.png")
    coarse.resize((width, height), Image.BICUBIC).save(paths[name])
  return paths


def our_probabilities(run, paths: list[str]) -> np.ndarray:
  """What ``predict`` computes: the run's squares of the files, then its test views and softmax."""
  spec = run.view_spec
  squares = [images.central_square(prediction.load_image(p, 3), spec.resize_size, spec.resize) for p in paths]
  return np.exp(run.log_probs(np.stack(squares)))


def assert_parity(ours: np.ndarray, theirs: np.ndarray, tolerance: float) -> None:
  assert theirs.max() > 0.02, "the reference's probabilities are too flat for the comparison to mean much"
  np.testing.assert_allclose(ours, theirs, atol=tolerance, rtol=0)
  assert ours.argmax() == theirs.argmax()


@pytest.fixture(scope="module")
def torchvision_run(tmp_path_factory):
  torchvision = reference_nets.torchvision()
  torch.manual_seed(0)
  net = torchvision.models.alexnet().eval()
  with torch.no_grad():
    net.classifier[6].weight.mul_(FC8_SCALE)
  folder = tmp_path_factory.mktemp("torchvision")
  torch.save(net.state_dict(), folder / "alexnet.pth")
  imported_run.write(str(folder / "run"), str(folder / "alexnet.pth"))
  return net, trained_run.load(str(folder / "run")), torchvision


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHAPES))
def test_torchvision_import_predicts_as_torchvision(torchvision_run, pictures, name):
  net, run, torchvision = torchvision_run
  transforms = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
  with torch.no_grad():
    theirs = torch.softmax(net(transforms(Image.open(pictures[name]).convert("RGB"))[None]), -1).numpy()
  assert_parity(our_probabilities(run, [pictures[name]]), theirs, 1e-3 if name in SQUARE else 1e-2)


def caffe_reference(net, path: str, mean_bgr: np.ndarray) -> np.ndarray:
  """Caffe's test view: warped to 256x256, BGR, 0-255 minus the mean (pixel or image), centre 227 crop."""
  warped = np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR), np.float32)
  bgr = warped[..., ::-1].transpose(2, 0, 1) - mean_bgr
  crop = torch.from_numpy(np.ascontiguousarray(bgr[:, 14:241, 14:241]))[None]
  with torch.no_grad():
    return torch.softmax(net(crop), -1).numpy()


@pytest.fixture(scope="module", params=["layer", "layers_v1_with_mean_image"])
def caffe_run(request, tmp_path_factory):
  """A Caffe-semantics net imported from a caffemodel in one layout; the V1 one with a mean image."""
  v1 = request.param != "layer"
  net = reference_nets.caffe_net(seed=1, fc8_scale=FC8_SCALE)
  folder = tmp_path_factory.mktemp("caffe")
  (folder / "net.caffemodel").write_bytes(reference_nets.caffemodel_bytes(net, v1=v1))
  mean_path, mean_bgr = None, np.array([104.0, 117.0, 123.0], np.float32)[:, None, None]
  if v1:
    mean_bgr = np.random.default_rng(2).uniform(80, 140, (3, 256, 256)).astype(np.float32)
    mean_path = str(folder / "mean.binaryproto")
    (folder / "mean.binaryproto").write_bytes(reference_nets.blob_bytes(mean_bgr[None], legacy=True))
  imported_run.write(str(folder / "run"), str(folder / "net.caffemodel"), mean_path)
  return net, trained_run.load(str(folder / "run")), mean_bgr


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHAPES))
def test_caffemodel_import_predicts_as_caffe(caffe_run, pictures, name):
  net, run, mean_bgr = caffe_run
  theirs = caffe_reference(net, pictures[name], mean_bgr)
  assert_parity(our_probabilities(run, [pictures[name]]), theirs, 1e-3 if name in SQUARE else 1e-2)


@pytest.mark.slow
def test_imported_run_names_imagenet_classes_and_refuses_training(torchvision_run):
  _, run, _ = torchvision_run
  assert run.label_names()[281] == "tabby" and imagenet_classes.wnids_and_names()[0][281] == "n02123045"
  with pytest.raises(run_dir.WorkdirError, match="--config.init_from="):
    run_dir.check_config(run.workdir, {}, allow_config_change=True)


def test_a_file_that_does_not_fit_names_the_layer_and_writes_nothing(tmp_path):
  net = reference_nets.torchvision().models.alexnet(num_classes=10)
  state = net.state_dict()
  state["classifier.4.weight"] = torch.zeros(4096, 100)
  torch.save(state, tmp_path / "bad.pth")
  with pytest.raises(layouts.LayoutError, match=r"layer classifier\.4: .* shape \(4096, 100\), .* \(4096, 4096\)"):
    imported_run.write(str(tmp_path / "run"), str(tmp_path / "bad.pth"))
  assert sorted(os.listdir(tmp_path)) == ["bad.pth"]


# torch.save's two formats: the zip one (PyTorch >= 1.6) and the legacy one (older files, torchvision's own).
SAVE_FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}


@pytest.mark.parametrize("save_format", list(SAVE_FORMATS))
def test_torch_file_refuses_pickled_code(tmp_path, save_format):
  class Code:
    def __reduce__(self):
      return (os.system, ("echo never",))

  torch.save({"weight": Code()}, tmp_path / "code.pth", **SAVE_FORMATS[save_format])
  with pytest.raises(torch_file.UnsafeFileError, match="posix.system|os.system"):
    torch_file.read_state_dict(str(tmp_path / "code.pth"))
  assert issubclass(torch_file.UnsafeFileError, pickle.UnpicklingError)


@pytest.mark.parametrize("save_format", list(SAVE_FORMATS))
def test_torch_file_reads_views_and_dtypes(tmp_path, save_format):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  tensors = {"t": base.t(), "row": base[2], "half": base.half(), "bf16": base.bfloat16(), "long": torch.arange(5)}
  torch.save(tensors, tmp_path / "t.pth", **SAVE_FORMATS[save_format])
  read = torch_file.read_state_dict(str(tmp_path / "t.pth"))
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(read[name], tensor.float().numpy() if name == "bf16" else tensor.numpy())


def test_a_legacy_torch_file_of_torchvisions_alexnet_reads_as_torch_loads_it(tmp_path):
  model = reference_nets.torchvision().models.alexnet()
  torch.save(model.state_dict(), tmp_path / "owt.pth", _use_new_zipfile_serialization=False)
  read = torch_file.read_state_dict(str(tmp_path / "owt.pth"))
  loaded = torch.load(tmp_path / "owt.pth", weights_only=True)
  assert list(read) == list(loaded)
  for name, tensor in loaded.items():
    np.testing.assert_array_equal(read[name], tensor.numpy())
  reference, _, layers = imported_run.read_layers(str(tmp_path / "owt.pth"))  # told from a caffemodel
  assert reference is references.TORCHVISION and set(layers) == {name.rpartition(".")[0] for name in loaded}


@pytest.mark.parametrize("damage", ["cut", "not_torch"])
def test_a_damaged_legacy_file_is_a_value_error(tmp_path, damage):
  torch.save({"w": torch.ones(100)}, tmp_path / "w.pth", _use_new_zipfile_serialization=False)
  data = (tmp_path / "w.pth").read_bytes()
  (tmp_path / "w.pth").write_bytes(data[:-50] if damage == "cut" else b"plain text, not a torch file")
  with pytest.raises(ValueError, match="cut off|not a torch file"):
    torch_file.read_state_dict(str(tmp_path / "w.pth"))


def test_caffemodel_reader_reads_both_layouts_and_legacy_dims():
  net = reference_nets.caffe_net()
  expected = reference_nets.weighted_layers(net)
  for v1 in (False, True):
    layout, read = caffemodel.read_layers(reference_nets.caffemodel_bytes(net, v1=v1))
    assert [layer.name for layer in read] == list(reference_nets.CAFFE_NAMES)
    assert ("V1" in layout) == v1 and {layer.type for layer in read} == {"Convolution", "InnerProduct"}
    fc6 = read[5].blobs[0]
    assert fc6.shape == ((1, 1, 4096, 9216) if v1 else (4096, 9216))
    np.testing.assert_array_equal(fc6.reshape(4096, 9216), expected[5][0])


def test_varints_read_as_protobuf_writes_them():
  for value in (0, 1, 127, 128, 300, 2**31 - 1, 2**63):
    encoded = reference_nets._varint(value)
    assert protobuf_wire.read_varint(memoryview(encoded), 0) == (value, len(encoded))
  with pytest.raises(protobuf_wire.WireError):
    list(protobuf_wire.fields(memoryview(b"\x0a\x05ab")))  # a 5-byte field with 2 bytes left


@pytest.mark.parametrize("side", [13, 6, 7, 20])
def test_adaptive_avg_pool_is_pytorchs(side):
  x = np.random.default_rng(side).normal(size=(2, side, side + 3, 5)).astype(np.float32)
  theirs = torch.nn.AdaptiveAvgPool2d(6)(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(layers.adaptive_avg_pool(x, 6)), theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_command_line_import_and_predict(tmp_path, pictures):
  torch.manual_seed(3)
  torch.save(reference_nets.torchvision().models.alexnet().state_dict(), tmp_path / "tv.pth")
  command = [
    sys.executable,
    "-m",
    "alexnet_jax.import_weights",
    f"--workdir={tmp_path / 'run'}",
    str(tmp_path / "tv.pth"),
  ]
  subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
  predicted = subprocess.run(
    [sys.executable, "-m", "alexnet_jax.predict", f"--workdir={tmp_path / 'run'}", pictures["wide"]],
    cwd=REPO, check=True, capture_output=True, text=True,
  )  # fmt: skip
  names = set(imagenet_classes.wnids_and_names()[1])
  assert [line.split("%")[1].strip() in names for line in predicted.stdout.splitlines()[1:]] == [True] * 5
  refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1].startswith("error: --workdir=")


@pytest.mark.slow
def test_export_of_an_imported_torchvision_run_is_torchvisions_net(torchvision_run, tmp_path):
  from alexnet_jax.inference import export  # pylint: disable=g-import-not-at-top
  from alexnet_jax.yardsticks import torch_alexnet  # pylint: disable=g-import-not-at-top

  net, run, _ = torchvision_run
  exported = torch_alexnet.TorchAlexNet(**export.model_options(run.config)).eval()
  exported.load_state_dict({k: torch.from_numpy(v) for k, v in torch_alexnet.state_dict_from_jax(run.params).items()})
  x = torch.randn(2, 3, 224, 224)
  with torch.no_grad():
    np.testing.assert_allclose(exported(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-4)

"""The benchmark's CPU path end to end, and the facts it computes MFU and ratios from."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from alexnet_jax.model import alexnet
from alexnet_jax.yardsticks import benchmark, benchmark_report, torch_alexnet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run the CLI with TensorFlow and ml_collections made unimportable: the GPU machines lack both.
_RUN_WITHOUT_TF = (
  "import runpy, sys\n"
  "sys.modules['tensorflow'] = None\n"
  "sys.modules['ml_collections'] = None\n"
  "sys.argv[0] = 'benchmark'\n"
  "runpy.run_module('alexnet_jax.benchmark', run_name='__main__')\n"
)


@pytest.mark.slow
def test_cli_runs_all_three_sides_without_tensorflow_and_prints_one_json_line():
  # Eager PyTorch: torch.compile would add a minute of C++ compilation to this test.
  args = [
    "--input_size",
    "67",
    "--batch_size",
    "2",
    "--steps",
    "1",
    "--repeats",
    "2",
    "--warmup",
    "0",
    "--torch_compile",
    "off",
    "--baseline",
    "--json",
  ]
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
  done = subprocess.run(
    [sys.executable, "-c", _RUN_WITHOUT_TF, *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])

  assert result["backend"] == "cpu" and result["torch_device"] == "cpu"
  assert result["torch_compile"] is False
  assert (result["batch_size"], result["input_size"], result["dtype"]) == (2, 67, "float32")
  for side in ("jax", "textbook", "torch"):
    assert result[f"{side}_images_per_sec"] > 0
    assert result[f"{side}_step_ms_p10"] <= result[f"{side}_step_ms_median"] <= result[f"{side}_step_ms_p90"]
    assert result[f"{side}_compile_s"] > 0
    assert result[f"{side}_peak_memory_mb"] > 0
  assert result["ratio"] == pytest.approx(result["jax_images_per_sec"] / result["torch_images_per_sec"])
  assert len(result["ratio_per_repeat"]) == 2
  assert result["textbook_ratio"] == pytest.approx(result["textbook_images_per_sec"] / result["torch_images_per_sec"])
  assert result["speedup_vs_textbook"] == pytest.approx(
    result["jax_images_per_sec"] / result["textbook_images_per_sec"]
  )


@pytest.mark.slow
def test_tables_show_the_textbook_side_only_when_timed(capsys):
  args = benchmark.parse_args(["--input_size", "67", "--baseline"])
  assert args.baseline and not benchmark.parse_args([]).baseline
  args = argparse.Namespace(**{**vars(args), "dtype": "float32", "batch_size": 2})  # as main() does
  side = lambda name, seconds: benchmark_report.Side(name, 1.0, [seconds] * 3, [seconds] * 3, 100.0)
  plain = benchmark_report.summarize(args, [side("jax", 0.1), side("torch", 0.1)], [1.0], {})
  with_textbook = benchmark_report.summarize(
    args, [side("jax", 0.1), side("textbook", 0.4), side("torch", 0.1)], [1.0], {}
  )
  assert "speedup_vs_textbook" not in plain and "textbook_ratio" not in plain
  assert with_textbook["speedup_vs_textbook"] == pytest.approx(4.0)
  assert with_textbook["textbook_ratio"] == pytest.approx(0.25)

  benchmark_report.print_table(plain)
  benchmark_report.print_summary([plain])
  assert "textbook" not in capsys.readouterr().out
  benchmark_report.print_table(with_textbook)
  benchmark_report.print_summary([plain, with_textbook])
  out = capsys.readouterr().out
  assert "jax/textbook 4.00x" in out and "textbook/torch 0.250" in out
  assert "textbook img/s" in out and "4.00x" in out.splitlines()[-1]


@pytest.mark.parametrize(
  "argv,flag",
  [
    (["--input_size", "40"], "--input_size"),
    (["--dtype", "float16"], "--dtype"),
    (["--batch_size", "0"], "--batch_size"),
  ],
)
def test_a_bad_option_is_one_error_line_naming_the_flag_and_exit_status_1(capsys, argv, flag):
  with pytest.raises(SystemExit) as exited:
    benchmark.parse_args(argv)
  err = capsys.readouterr().err
  assert exited.value.code == 1 and len(err.splitlines()) == 1 and err.startswith("error: ") and flag in err, err


def test_train_flops_per_image_is_the_papers_count():
  # 724.4M multiply-adds per 227x227 image for the grouped net; x2 FLOP, x3 for fwd + bwd.
  assert benchmark_report.train_flops_per_image(227, towers=2) == pytest.approx(4.35e9, rel=1e-3)
  assert benchmark_report.train_flops_per_image(227, towers=1) > benchmark_report.train_flops_per_image(227, towers=2)


@pytest.mark.parametrize("input_size,width,in_channels,towers", [(227, 1.0, 3, 2), (67, 0.25, 1, 2), (99, 0.5, 3, 1)])
def test_train_flops_per_image_counts_the_models_own_kernels(input_size, width, in_channels, towers):
  """3 x 2 x the multiply-adds read off the built model: each conv kernel (T, kh, kw, in, out) once per
  output position, each FC kernel (T, in, out) once."""
  model = nnx.eval_shape(
    lambda: alexnet.AlexNet(
      10, towers=towers, width=width, in_channels=in_channels, input_size=input_size, rngs=nnx.Rngs(0)
    )
  )
  sizes = alexnet.feature_map_sizes(input_size)
  macs = sum(
    sizes[layer.name] ** 2 * np.prod(conv.kernel.shape) for layer, conv in zip(alexnet.CONV_LAYERS, model.convs)
  )
  macs += sum(np.prod(fc.kernel.shape) for fc in (model.fc6, model.fc7, model.fc8))
  assert benchmark_report.train_flops_per_image(input_size, towers, 10, width, in_channels) == 6 * macs


@pytest.mark.parametrize("towers", [1, 2])
def test_torch_reference_has_the_same_parameter_count_as_the_jax_model(towers):
  import torch  # pylint: disable=import-outside-toplevel

  with torch.device("meta"):  # Shapes only: no 61M-parameter initialisation.
    torch_net = torch_alexnet.TorchAlexNet(towers=towers)
  torch_count = sum(p.numel() for p in torch_net.parameters())
  jax_count = alexnet.count_params(nnx.eval_shape(lambda: alexnet.AlexNet(towers=towers)))
  assert torch_count == jax_count == {1: 62_378_344, 2: 60_965_224}[towers]


def test_torch_reference_output_shape_at_a_small_input():
  import torch  # pylint: disable=import-outside-toplevel

  net = torch_alexnet.TorchAlexNet(10, input_size=67).eval()
  assert net(torch.zeros(2, 3, 67, 67)).shape == (2, 10)
  with pytest.raises(ValueError, match="input_size=40"):
    torch_alexnet.TorchAlexNet(input_size=40)


def test_the_model_flags_are_the_model_options_with_their_defaults_and_rules(capsys):
  from alexnet_jax.model import options  # pylint: disable=import-outside-toplevel

  args = benchmark.parse_args([])
  declared = {option.name: option for option in options.OPTIONS}
  assert {name: getattr(args, name) for name in benchmark.MODEL_FLAGS} == {
    name: declared[name].default for name in benchmark.MODEL_FLAGS
  }
  for name in benchmark.MODEL_FLAGS:
    with pytest.raises(SystemExit):
      benchmark.parse_args([f"--{name}", "0"])  # 0 breaks the rule of each of them
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument --{name}: '0' is not allowed: expected {declared[name].rule.expected}"), err

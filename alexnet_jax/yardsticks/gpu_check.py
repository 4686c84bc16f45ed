"""One prepared check of the ImageNet job on a GPU host: one command, one JSON, every number measured in it.

  python -m alexnet_jax.yardsticks.gpu_check --out=DIR          # one GPU, within 8 minutes
  python -m alexnet_jax.yardsticks.gpu_check --out=DIR --tiny   # CPU sizes, end to end in a minute

In order, in one run:

1. a synthetic ImageNet (``synthetic_imagenet.py``: ~20k natural-sized JPEGs made on every core) and its
   store of 256x256 squares (``data/prepare_store.py``, the real code, every core);
2. the real training CLI, ``python -m alexnet_jax.main`` on ``experiments/imagenet2012.py`` in bfloat16
   at batch 512, a few hundred steps on one device, its input read as configured (every core), as a
   subprocess; its steady images/s is the median of the throughput it wrote to TensorBoard
   (``train_images_per_second``) over its logging windows after the first (which holds the compilation);
3. the step alone: ``benchmark_jax.build_jax_side``'s train step (no augmentation) on one batch already
   on the device;
4. the stream alone: ``loader.train_batches`` over the store, streamed as on the full dataset, timed
   as ``benchmark_input`` times it;
5. with two or more devices, the CLI again with the paper's two-tower split on two devices
   (``--config.tower_parallel=2``), against the one-device run.

``DIR/gpu_check.json`` holds the images/s of each, their bf16 MFU (``benchmark_report``'s FLOP count
and dense peaks), what limited the run (``verdict``: input-bound where the CLI falls short of the step
alone and the stream alone is slower than the step alone), the CLI's share of each, the device, its
count, the usable cores and the versions; ``DIR`` also gets each CLI run's log. The data and the CLI's
workdirs go under ``--data_dir`` (kept for a rerun).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from alexnet_jax import errors, flag_errors, outputs, utils
from alexnet_jax.data import input_spec, loader, prepare_store
from alexnet_jax.train import state as state_lib
from alexnet_jax.yardsticks import benchmark, benchmark_jax, benchmark_report, stream_timing, synthetic_images

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_FILE = os.path.join("experiments", "imagenet2012.py")
DTYPE = "bfloat16"
THROUGHPUT_TAG = "train_images_per_second"  # what train/loop.py writes each logging window
WARMUP_STEPS = 3  # step-alone steps run before the timed ones
GOAL_CLI_OVER_STEP_ALONE = 0.8  # issue #32: the CLI at >= 80 % of the step alone
RESULT_FILE = "gpu_check.json"


@dataclasses.dataclass(frozen=True)
class Sizes:
  """How large each part of the check is."""

  variant: str  # the config's variant after the colon ("" or "smoke")
  train_images: int
  validation_images: int
  batch_size: int
  cli_steps: int
  log_every_steps: int  # the CLI's throughput windows: cli_steps / log_every_steps of them
  step_alone_steps: int
  stream_batches: int
  store_workers: int | None  # prepare_store's processes (None: every core; 1: in this process, none started)


FULL = Sizes("", 20_000, 1_024, 512, 400, 40, 50, 40, None)
TINY = Sizes("smoke", 48, 16, 8, 6, 2, 3, 3, 1)  # CPU sizes: the smoke network on 67x67 crops


class GpuCheckError(errors.UserError, RuntimeError):
  """A part of the check that failed; the message says which and where its log is."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder for gpu_check.json and the CLI runs' logs")
  parser.add_argument("--tiny", action="store_true", help="CPU sizes: a few dozen images, the smoke model, few steps")
  parser.add_argument(
    "--data_dir",
    default=os.path.join(tempfile.gettempdir(), "alexnet_jax_gpu_check"),
    help="where the synthetic ImageNet, its store and the CLI's workdirs go (a folder per size, kept)",
  )
  parser.add_argument("--overwrite", action="store_true", help="replace an earlier gpu_check.json in --out")
  return parser.parse_args(argv)


def settings(sizes: Sizes, data_dir: str) -> dict[str, object]:
  """The config fields the check sets, the same in this process and on the CLI's command line."""
  return {
    "data_dir": data_dir,
    "batch_size": sizes.batch_size,
    "model.dtype": DTYPE,
    "num_train_steps": sizes.cli_steps,
    "log_every_steps": sizes.log_every_steps,
    "eval_every_steps": sizes.cli_steps,  # one evaluation, at the end: none inside the timed windows
    "checkpoint_every_steps": sizes.cli_steps,
    "eval_max_examples": sizes.batch_size,
  }


def config_spec(sizes: Sizes) -> str:
  """The ``--config`` of the CLI runs: ``experiments/imagenet2012.py`` with the sizes' variant."""
  return os.path.join(REPO, CONFIG_FILE) + (f":{sizes.variant}" if sizes.variant else "")


def load_config(sizes: Sizes, fields: dict[str, object]):
  """The config the CLI runs read: :func:`config_spec`'s, with ``fields`` set."""
  config = flag_errors.load_config_file(config_spec(sizes))
  for path, value in fields.items():
    *parents, name = path.split(".")
    setattr(functools.reduce(getattr, parents, config), name, value)
  return config


def host_facts() -> dict:
  """The device, how many, the cores this process may use and the versions."""
  return {
    "device": jax.devices()[0].device_kind,
    "backend": jax.default_backend(),
    "device_count": jax.device_count(),
    "cores": utils.usable_cores(),
    "jax_version": jax.__version__,
    "python_version": platform.python_version(),
  }


def build_store(config, sizes: Sizes) -> dict:
  """The synthetic source and its store in ``config.data_dir`` (made once per size); how long each took."""
  from alexnet_jax.yardsticks import synthetic_imagenet  # pylint: disable=g-import-not-at-top -- TFDS's builder

  start = time.perf_counter()
  synthetic_imagenet.prepare(config.data_dir, num_train=sizes.train_images, num_validation=sizes.validation_images)
  source_seconds = time.perf_counter() - start
  start = time.perf_counter()
  prepare_store.prepare(config, workers=sizes.store_workers, progress=False)
  return {
    "train_images": sizes.train_images,
    "validation_images": sizes.validation_images,
    "generation_workers": synthetic_images.worker_count(sizes.train_images),
    "source_seconds": round(source_seconds, 1),
    "store_seconds": round(time.perf_counter() - start, 1),
  }


def device_env(base_env: dict[str, str], count: int) -> dict[str, str]:
  """``base_env`` with only the first ``count`` devices visible (GPUs, or forced CPU devices)."""
  env = dict(base_env)
  xla_flags = [flag for flag in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in flag]
  env["XLA_FLAGS"] = " ".join([*xla_flags, f"--xla_force_host_platform_device_count={count}"])
  visible = base_env.get("CUDA_VISIBLE_DEVICES") or ",".join(str(index) for index in range(count))
  env["CUDA_VISIBLE_DEVICES"] = ",".join(visible.split(",")[:count])  # the first of those this process sees
  return env


def run_cli(sizes: Sizes, fields: dict[str, object], *, devices: int, log_path: str, base_env: dict) -> dict:
  """Trains with ``python -m alexnet_jax.main`` on ``devices`` devices (two towers on two) in a fresh
  workdir; returns its steady throughput, read from what it wrote."""
  workdir = tempfile.mkdtemp(prefix=f"cli_{devices}_", dir=fields["data_dir"])
  overrides = {**fields, "tower_parallel": devices}
  command = [sys.executable, "-m", "alexnet_jax.main", f"--workdir={workdir}", f"--config={config_spec(sizes)}"]
  command += [f"--config.{path}={value}" for path, value in overrides.items()]
  start = time.perf_counter()
  with open(log_path, "w", encoding="utf-8") as log:
    status = subprocess.run(
      command, cwd=REPO, env=device_env(base_env, devices), stdout=log, stderr=subprocess.STDOUT
    ).returncode
  wall_seconds = time.perf_counter() - start
  if status != 0:
    with open(log_path, encoding="utf-8") as log:
      tail = log.read()[-1500:]
    raise GpuCheckError(f"the training CLI on {devices} device(s) exited with {status}; log {log_path}:\n{tail}")
  windows = throughput_windows(workdir)
  return {
    "images_per_second": round(statistics.median(windows[1:]), 1),
    "windows": [round(value, 1) for value in windows],
    "steps": sizes.cli_steps,
    "log_every_steps": sizes.log_every_steps,
    "devices": devices,
    "wall_seconds": round(wall_seconds, 1),
    "workdir": workdir,
  }


def throughput_windows(workdir: str) -> list[float]:
  """The images/s of each of the run's logging windows, in step order, from its TensorBoard events."""
  from alexnet_jax.sweeps import report  # pylint: disable=g-import-not-at-top

  windows = [value for _, value in report.read_curves(workdir).get(THROUGHPUT_TAG, [])]
  if len(windows) < 2:
    raise GpuCheckError(f"{workdir} holds {len(windows)} {THROUGHPUT_TAG} windows; a steady state needs 2 or more")
  return windows


def time_step_alone(config, sizes: Sizes) -> dict:
  """The train step alone, on one device, on one batch already there (``benchmark_jax``'s step)."""
  rng = np.random.default_rng(0)
  size = config.model.input_size
  images = rng.standard_normal((sizes.batch_size, size, size, config.model.in_channels), np.float32)
  labels = rng.integers(0, config.model.num_classes, sizes.batch_size).astype(np.int32)
  make_model = functools.partial(state_lib.create_model, config)
  side, run_one = benchmark_jax.build_jax_side(make_model, images, labels)
  benchmark.time_steps(run_one, WARMUP_STEPS)
  benchmark.time_steps(run_one, sizes.step_alone_steps, side)
  return {
    "images_per_second": round(side.images_per_sec(sizes.batch_size), 1),
    "step_ms_median": round(1e3 * side.median(), 2),
    "steps": sizes.step_alone_steps,
    "compile_s": round(side.compile_s, 1),
  }


def time_stream_alone(config, sizes: Sizes) -> dict:
  """The training stream alone from the store, streamed as on the full dataset (``benchmark_input``'s timing)."""
  spec = dataclasses.replace(input_spec.build(config), route=input_spec.Route.STREAMED)
  batches = loader.train_batches(spec)
  next(batches)  # start-up: the first batches read ahead
  images_per_second, cpu_us = stream_timing.time_batches(batches, sizes.stream_batches, sizes.batch_size)
  return {
    "images_per_second": round(images_per_second, 1),
    "cpu_us_per_image": round(cpu_us, 1),
    "timed_images": sizes.stream_batches * sizes.batch_size,
    "read_threads": spec.read_threads,  # config.input.read_threads resolved
  }


def with_mfu(part: dict, flops: float, peak: float | None) -> dict:
  """``part`` with the MFU of its images/s (None where the device's peak is unknown, e.g. a CPU)."""
  mfu = part["images_per_second"] * flops / 1e12 / peak if peak else None
  return {**part, "mfu": None if mfu is None else round(mfu, 4)}


def verdict(cli: float, step_alone: float, stream_alone: float) -> dict:
  """What limited the CLI's run, from its images/s against the step alone's and the stream alone's.

  "step": the run keeps :data:`GOAL_CLI_OVER_STEP_ALONE` of the step alone's pace; else "input" (it
  is input-bound) where the stream alone is slower than the step alone, else "contention": each alone
  is fast enough, together they are not (readers and the step share the host's cores, and the CLI's
  step also augments)."""
  over_step = cli / step_alone
  meets_goal = over_step >= GOAL_CLI_OVER_STEP_ALONE
  limited_by = "step" if meets_goal else "input" if stream_alone < step_alone else "contention"
  return {
    "limited_by": limited_by,
    "input_bound": limited_by == "input",
    "cli_over_step_alone": round(over_step, 3),
    "cli_over_stream_alone": round(cli / stream_alone, 3),
    "goal_cli_over_step_alone": GOAL_CLI_OVER_STEP_ALONE,
    "meets_goal": meets_goal,
  }


def check(args: argparse.Namespace, base_env: dict[str, str]) -> dict:
  """Runs every part (module docstring) and returns the JSON's contents; the CLI runs get ``base_env``."""
  sizes = TINY if args.tiny else FULL
  data_dir = outputs.make_folder(os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), sizes_name(sizes)))
  fields = settings(sizes, data_dir)
  config = load_config(sizes, fields)
  facts = host_facts()
  synthetic = build_store(config, sizes)
  cli = run_cli(sizes, fields, devices=1, log_path=os.path.join(args.out, "cli_one_device.log"), base_env=base_env)
  towers = None
  if facts["device_count"] >= 2:
    log_path = os.path.join(args.out, "cli_two_towers.log")
    towers = run_cli(sizes, fields, devices=2, log_path=log_path, base_env=base_env)
    towers["over_one_device"] = round(towers["images_per_second"] / cli["images_per_second"], 3)
  step_alone, stream_alone = time_step_alone(config, sizes), time_stream_alone(config, sizes)
  flops = benchmark_report.train_flops_per_image(
    config.model.input_size, config.model.towers, config.model.num_classes, config.model.width, config.model.in_channels
  )
  peak, peak_source = benchmark_report.peak_tflops(None, DTYPE)
  return {
    **facts,
    "tiny": args.tiny,
    "dtype": DTYPE,
    "batch_size": sizes.batch_size,
    "input_size": config.model.input_size,
    "route": input_spec.build(config).route.value,  # the CLI's: streamed at the full size
    "train_gflop_per_image": round(flops / 1e9, 4),
    "peak_tflops": peak,
    "peak_source": peak_source,
    "synthetic": synthetic,
    "cli": with_mfu(cli, flops, peak),
    "step_alone": with_mfu(step_alone, flops, peak),
    "stream_alone": stream_alone,
    **verdict(cli["images_per_second"], step_alone["images_per_second"], stream_alone["images_per_second"]),
    "two_towers": towers and with_mfu(towers, flops, peak),
  }


def sizes_name(sizes: Sizes) -> str:
  return "tiny" if sizes is TINY else "full"


def main(argv: list[str] | None = None) -> None:
  """The check, with every failure the user can act on as one ``error:`` line and exit status 1."""
  args = parse_args(argv)
  base_env = dict(os.environ)  # what the CLI runs start from: they take the device's memory as training does
  # This process's device memory grows as it needs it, leaving the device to the CLI runs it starts.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  try:
    outputs.make_folder(args.out)
    path = outputs.check(os.path.join(args.out, RESULT_FILE), overwrite=args.overwrite)
    result = check(args, base_env)
    outputs.write_json(path, result, overwrite=args.overwrite, sort_keys=False)
  except errors.UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()

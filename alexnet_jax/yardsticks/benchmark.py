"""Train-step throughput of the JAX AlexNet against a PyTorch reference, side by side.

    python -m alexnet_jax.benchmark --batch_size 32 --steps 10 --repeats 5
    python -m alexnet_jax.benchmark --dtype bfloat16 float32 --batch_size 128 256 512 --json

Both sides run one full SGD+momentum training step (forward, backward, weight decay, update) on
the same synthetic batch, already on the device, so only the step is timed. The two frameworks
alternate, ``--steps`` steps each per repeat, so a machine whose load drifts (other jobs on a
shared host) slows both sides alike; the ratio is JAX images/s over PyTorch images/s.

The PyTorch side is ``torch_alexnet.TorchAlexNet`` under ``torch.compile`` by default (on CPU
too, where it measured ~1.4x faster than eager; ``--torch_compile off`` times eager PyTorch), with
channels-last memory on CUDA. On CUDA both sides use TF32 for float32 convolutions and matmuls
(JAX's default precision there; PyTorch is set to match).

``--baseline`` adds a third side to the same loop, "textbook": ``textbook.TextbookAlexNet``, the
same network written the obvious Flax way (grouped convolutions, autodiff through ``nnx.max_pool``
and a plain LRN), trained by the same compiled step. ``speedup_vs_textbook`` (JAX over textbook) is
what the model's CPU speed-ups bought, and ``textbook_ratio`` (textbook over PyTorch) is the ratio
before them. The XLA flags of ``xla_flags.py`` apply to the whole process, both JAX sides included.

``--dtype bfloat16`` is mixed precision on both sides: bf16 compute, float32 master weights and
optimizer state (the JAX model casts its float32 params per use; PyTorch runs under autocast).
Needs neither TensorFlow nor ml_collections: the GPU machines have jax, flax, optax and torch only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

# The PyTorch reference shares the GPU with JAX in this process: do not let JAX grab 75 % of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from alexnet_jax.model import alexnet  # noqa: E402
from alexnet_jax.parallel import sharding  # noqa: E402
from alexnet_jax.train import optimizers, steps  # noqa: E402
from alexnet_jax.train import state as state_lib  # noqa: E402
from alexnet_jax.yardsticks import textbook  # noqa: E402

DTYPES = ("float32", "bfloat16")
# Dense peak TFLOP/s by device kind substring and dtype, for MFU. float32 uses the TF32 tensor-core
# peak because both frameworks run float32 convolutions and matmuls as TF32 on these GPUs.
PEAK_TFLOPS = {
  "H100": {"bfloat16": 989.0, "float32": 495.0},
  "H200": {"bfloat16": 989.0, "float32": 495.0},
  "A100": {"bfloat16": 312.0, "float32": 156.0},
}
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


class _OneLineErrors(argparse.ArgumentParser):
  """argparse with the project's promise for a bad flag: one ``error: ...`` line and exit status 1
  (argparse's own prints the usage block and exits 2)."""

  def error(self, message: str):
    print(f"error: {message} (see python -m alexnet_jax.benchmark --help)", file=sys.stderr)
    sys.exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
  """Command-line options; an invalid value is one ``error:`` line naming the option, exit status 1."""
  parser = _OneLineErrors(
    prog="python -m alexnet_jax.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    "--batch_size",
    type=_positive_int,
    nargs="+",
    default=[32],
    help="one or more; each (dtype, batch size) pair is one run in this process",
  )
  parser.add_argument(
    "--dtype",
    choices=DTYPES,
    nargs="+",
    default=["float32"],
    help="float32, or bfloat16 = bf16 compute on float32 master weights",
  )
  parser.add_argument("--towers", type=int, choices=(1, 2), default=2)
  parser.add_argument("--input_size", type=_positive_int, default=227)
  parser.add_argument("--width", type=_positive_float, default=1.0, help="channel multiplier (the recipe: 0.25)")
  parser.add_argument(
    "--in_channels", type=int, choices=(1, 3), default=3, help="image channels (1: a grey dataset's conv1)"
  )
  parser.add_argument("--num_classes", type=_positive_int, default=1000)
  parser.add_argument("--steps", type=_positive_int, default=5, help="timed steps per repeat")
  parser.add_argument(
    "--warmup", type=_nonnegative_int, default=2, help="untimed steps after compilation, per framework"
  )
  parser.add_argument(
    "--repeats", type=_positive_int, default=3, help="alternating rounds of --steps steps for each framework"
  )
  parser.add_argument("--no_torch", action="store_true", help="time the JAX step only")
  parser.add_argument(
    "--baseline",
    action="store_true",
    help="also time the textbook Flax AlexNet (textbook_model.py), the 'before' "
    "of the CPU speed-ups, in the same alternating loop",
  )
  parser.add_argument(
    "--torch_compile",
    choices=("on", "off"),
    default="on",
    help="torch.compile the reference (it speeds PyTorch up on CPU and GPU; "
    "off times eager PyTorch and skips a minute of compilation on CPU)",
  )
  parser.add_argument(
    "--torch_channels_last",
    choices=("auto", "on", "off"),
    default="auto",
    help="NHWC memory format for the reference (auto: on for CUDA only, where it "
    "helps; on CPU it measured slower with torch.compile)",
  )
  parser.add_argument(
    "--peak_tflops", type=float, default=None, help="device peak for MFU; default: looked up from the device name"
  )
  parser.add_argument("--json", action="store_true", help="print one JSON line per run instead of a table")
  args = parser.parse_args(argv)
  try:
    alexnet.feature_map_sizes(args.input_size)
  except ValueError as error:
    parser.error(f"--input_size: {error}")
  if args.baseline and not _paper_shape(args):
    parser.error("--baseline: the textbook model has the paper's width and three channels only")
  return args


@dataclasses.dataclass
class Side:
  """What one framework's step measured."""

  name: str
  compile_s: float
  step_times: list[float] = dataclasses.field(default_factory=list)
  cpu_times: list[float] = dataclasses.field(default_factory=list)
  peak_memory_mb: float | None = None

  def median(self) -> float:
    return statistics.median(self.step_times)

  def images_per_sec(self, batch_size: int) -> float:
    return batch_size / self.median()

  def spread(self) -> tuple[float, float]:
    """(10th, 90th) percentile of step time in seconds."""
    times = np.asarray(self.step_times)
    return float(np.percentile(times, 10)), float(np.percentile(times, 90))


# ----------------------------------------------------------------------------------- JAX side


def build_jax_side(
  args: argparse.Namespace,
  images: np.ndarray,
  labels: np.ndarray,
  model_class: Callable[..., nnx.Module] = alexnet.AlexNet,
  name: str = "jax",
):
  """Compiles the train step users train with for ``model_class``; returns the Side and a function
  running one step.

  The step is ``train/steps.py``'s ``train_step`` (forward, loss and metrics, backward, the
  learning rate written into the optimizer state, the update) with ``train/optimizers.py``'s
  "sgd" rule, on a one-device mesh, its state donated as in training. ``model_class`` takes
  ``(num_classes, towers=, input_size=, dtype=<name>, rngs=)`` (and the ``width`` and ``in_channels``
  options when they are not the paper's): ``alexnet.AlexNet`` or the textbook baseline
  (``--baseline``), which thereby get the same step and compilation.
  """
  mesh = sharding.create_mesh(1, devices=jax.devices()[:1])
  tx = optimizers.make_optimizer("sgd", learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
  shape = {} if _paper_shape(args) else {"width": args.width, "in_channels": args.in_channels}
  model_def, train_state = state_lib.init_train_state(
    lambda rngs: model_class(
      args.num_classes, towers=args.towers, input_size=args.input_size, dtype=args.dtype, rngs=rngs, **shape
    ),
    0,
    mesh,
    tx,
  )
  step = steps.jit_train_step(model_def=model_def, tx=tx, schedule=optax.constant_schedule(LEARNING_RATE), mesh=mesh)
  batch = sharding.global_batch({"image": images, "label": labels}, mesh)
  start = time.perf_counter()
  compiled = step.lower(train_state, batch).compile()
  side = Side(name, compile_s=time.perf_counter() - start)
  if jax.default_backend() != "cpu":
    side.peak_memory_mb = compiled_memory_mb(compiled)
  holder = [train_state]

  def run_one() -> None:
    holder[0], metrics = compiled(holder[0], batch)
    metrics["loss"].block_until_ready()

  return side, run_one


def compiled_memory_mb(compiled) -> float | None:
  """Device memory the compiled step needs: its arguments, outputs (less donated) and temporaries.

  Read from XLA's buffer assignment, so it belongs to this one executable, unlike the process-wide
  peak in ``memory_stats()``, which cannot be reset between runs.
  """
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  total = (
    analysis.argument_size_in_bytes
    + analysis.output_size_in_bytes
    - analysis.alias_size_in_bytes
    + analysis.temp_size_in_bytes
  )
  return total / 2**20


# ------------------------------------------------------------------------------- PyTorch side


def build_torch_side(args: argparse.Namespace, images: np.ndarray, labels: np.ndarray):
  """Builds the PyTorch reference step on the same device type; returns (Side, run_one, info)."""
  import torch  # Imported here so `--no_torch` runs where PyTorch is missing.

  from alexnet_jax.yardsticks import torch_alexnet

  on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
  device = torch.device("cuda" if on_gpu else "cpu")
  use_compile = args.torch_compile == "on"
  channels_last = args.torch_channels_last == "on" or (args.torch_channels_last == "auto" and on_gpu)
  if on_gpu:
    # Match JAX's default float32 precision on GPU (TF32 tensor cores for convs and matmuls).
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  torch.manual_seed(0)
  model = torch_alexnet.TorchAlexNet(
    args.num_classes, towers=args.towers, input_size=args.input_size, width=args.width, in_channels=args.in_channels
  ).to(device, memory_format=memory_format)
  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, memory_format=memory_format)
  y = torch.from_numpy(labels).long().to(device)
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

  def make_step(forward):
    def run_one() -> None:
      optimizer.zero_grad(set_to_none=True)
      with autocast:
        logits = forward(x)
      loss = torch.nn.functional.cross_entropy(logits.float(), y)
      loss.backward()
      optimizer.step()
      if on_gpu:
        torch.cuda.synchronize()

    return run_one

  if on_gpu:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
  run_one = make_step(torch.compile(model) if use_compile else model)
  start = time.perf_counter()
  try:
    run_one()  # The first step traces and compiles under torch.compile.
  except Exception as error:  # pylint: disable=broad-except
    if not use_compile:
      raise
    # torch.compile needs a working C++/Triton toolchain; time eager PyTorch rather than nothing.
    print(f"torch.compile failed, timing eager PyTorch: {type(error).__name__}: {error}", file=sys.stderr)
    use_compile, run_one = False, make_step(model)
    start = time.perf_counter()
    run_one()
  side = Side("torch", compile_s=time.perf_counter() - start)
  info = {
    "torch_version": torch.__version__,
    "torch_device": str(device),
    "torch_compile": use_compile,
    "torch_channels_last": channels_last,
    "torch_threads": torch.get_num_threads(),
  }

  def peak_memory_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None

  return side, run_one, info, peak_memory_mb


# ---------------------------------------------------------------------------------- reporting


def train_flops_per_image(
  input_size: int = 227, towers: int = 2, num_classes: int = 1000, width: float = 1.0, in_channels: int = 3
) -> float:
  """FLOPs of one training step per image: 3 x (2 x multiply-adds of the forward pass).

  The backward pass costs two forward passes (input and weight gradients); element-wise work
  (ReLU, LRN, pooling, the update) is left out, as is usual for MFU. 227, 2 towers: ~4.35e9.
  """
  sizes = alexnet.feature_map_sizes(input_size)
  macs, channels = 0, in_channels
  for layer in alexnet.CONV_LAYERS:
    out = alexnet.scaled_channels(layer.channels, width, towers)
    fan_in = channels // towers if layer.within_tower else channels
    macs += sizes[layer.name] ** 2 * out * layer.kernel**2 * fan_in
    channels = out
  fc_in = sizes["pool5"] ** 2 * channels
  fc_width = alexnet.scaled_channels(alexnet.FC_WIDTH, width, towers)
  macs += fc_in * fc_width + fc_width * fc_width + fc_width * num_classes
  return 3 * 2 * macs


def peak_tflops(args: argparse.Namespace) -> tuple[float | None, str]:
  """The peak used for MFU and where it came from."""
  if args.peak_tflops:
    return args.peak_tflops, "--peak_tflops"
  kind = jax.devices()[0].device_kind
  for key, peaks in PEAK_TFLOPS.items():
    if key in kind:
      return peaks[args.dtype], f"dense {args.dtype} peak of {key}"
  return None, "unknown device: pass --peak_tflops for MFU"


def max_rss_mb() -> float:
  """Peak resident memory of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(run_one: Callable[[], None], steps: int, side: Side | None = None) -> list[float]:
  """Wall-clock seconds of each of ``steps`` blocking steps; ``side`` also keeps them.

  The process CPU time of each step goes to ``side.cpu_times`` too: on a shared host it is
  less sensitive to other jobs than wall time, most of all when the process is pinned to one core.
  """
  times = []
  for _ in range(steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    run_one()
    times.append(time.perf_counter() - start)
    if side is not None:
      side.cpu_times.append(time.process_time() - cpu_start)
  if side is not None:
    side.step_times += times
  return times


def summarize(args, sides: list[Side], ratios: list[float], info: dict) -> dict:
  """All results as one flat dict (the ``--json`` line); ``sides`` holds "jax" and maybe others."""
  flops = train_flops_per_image(args.input_size, args.towers, args.num_classes, args.width, args.in_channels)
  peak, peak_source = peak_tflops(args)
  result = {
    "device": jax.devices()[0].device_kind,
    "backend": jax.default_backend(),
    "jax_version": jax.__version__,
    "batch_size": args.batch_size,
    "dtype": args.dtype,
    "towers": args.towers,
    "input_size": args.input_size,
    "width": args.width,
    "in_channels": args.in_channels,
    "steps": args.steps,
    "repeats": args.repeats,
    "train_gflop_per_image": flops / 1e9,
    **info,
  }
  for side in sides:
    ips = side.images_per_sec(args.batch_size)
    p10, p90 = side.spread()
    result.update(
      {
        f"{side.name}_images_per_sec": ips,
        f"{side.name}_step_ms_median": 1e3 * side.median(),
        f"{side.name}_step_ms_p10": 1e3 * p10,
        f"{side.name}_step_ms_p90": 1e3 * p90,
        f"{side.name}_cpu_ms_median": 1e3 * statistics.median(side.cpu_times),
        f"{side.name}_compile_s": side.compile_s,
        f"{side.name}_peak_memory_mb": side.peak_memory_mb,
        f"{side.name}_tflops": ips * flops / 1e12,
        f"{side.name}_mfu": ips * flops / 1e12 / peak if peak else None,
      }
    )
  result["peak_tflops"], result["peak_source"] = peak, peak_source
  if "torch_images_per_sec" in result:
    result["ratio"] = result["jax_images_per_sec"] / result["torch_images_per_sec"]
    result["ratio_per_repeat"] = ratios
  if "textbook_images_per_sec" in result:
    result["speedup_vs_textbook"] = result["jax_images_per_sec"] / result["textbook_images_per_sec"]
    if "torch_images_per_sec" in result:
      result["textbook_ratio"] = result["textbook_images_per_sec"] / result["torch_images_per_sec"]
  return result


def print_table(result: dict) -> None:
  """Human-readable report of one run."""
  print(
    f"device {result['device']} ({result['backend']}), jax {result['jax_version']}, "
    f"batch {result['batch_size']}, {result['dtype']}, towers {result['towers']}, width {result['width']}, "
    f"{result['input_size']}x{result['input_size']}x{result['in_channels']}, {result['steps']} steps x "
    f"{result['repeats']} repeats, {result['train_gflop_per_image']:.2f} GFLOP/image/step"
  )
  if "torch_version" in result:
    print(
      f"torch {result['torch_version']} on {result['torch_device']}: compile "
      f"{result['torch_compile']}, channels_last {result['torch_channels_last']}, "
      f"{result['torch_threads']} threads"
    )
  if result.get("peak_tflops"):
    print(f"MFU against {result['peak_tflops']:.0f} TFLOP/s ({result['peak_source']})")
  memory = "peak MB" if result["backend"] != "cpu" else "RSS MB"
  print(
    f"{'':8} {'img/s':>9} {'step ms':>9} {'p10-p90 ms':>15} {'CPU ms':>8} {'compile s':>10} "
    f"{memory:>9} {'TFLOP/s':>8} {'MFU':>6}"
  )
  for name in ("jax", "textbook", "torch"):
    if f"{name}_images_per_sec" not in result:
      continue
    get = lambda key, name=name: result[f"{name}_{key}"]
    mb = f"{get('peak_memory_mb'):9.0f}" if get("peak_memory_mb") else f"{'-':>9}"
    mfu = f"{100 * get('mfu'):5.1f}%" if get("mfu") is not None else f"{'-':>6}"
    print(
      f"{name:8} {get('images_per_sec'):9.1f} {get('step_ms_median'):9.1f} "
      f"{get('step_ms_p10'):7.1f}-{get('step_ms_p90'):<7.1f} {get('cpu_ms_median'):8.1f} "
      f"{get('compile_s'):10.1f} "
      f"{mb} {get('tflops'):8.3f} {mfu}"
    )
  if "ratio" in result:
    per_repeat = ", ".join(f"{r:.2f}" for r in result["ratio_per_repeat"])
    print(f"ratio jax/torch {result['ratio']:.3f} (per repeat: {per_repeat})")
  if "speedup_vs_textbook" in result:
    before = f", textbook/torch {result['textbook_ratio']:.3f}" if "textbook_ratio" in result else ""
    print(f"jax/textbook {result['speedup_vs_textbook']:.2f}x (what the CPU speed-ups bought){before}")


def print_summary(results: list[dict]) -> None:
  """One line per run: the table a sweep over batch sizes and dtypes is read from."""
  textbook = any("textbook_images_per_sec" in r for r in results)
  extra = f" {'textbook img/s':>15} {'textbook/torch':>15} {'jax/textbook':>12}" if textbook else ""
  print(
    f"{'dtype':9} {'batch':>5} {'jax img/s':>10} {'jax MFU':>8} {'torch img/s':>12} "
    f"{'torch MFU':>10} {'ratio':>6}{extra}"
  )
  for r in results:
    mfu = lambda side, r=r: f"{100 * r[side + '_mfu']:7.1f}%" if r.get(side + "_mfu") else f"{'-':>8}"
    torch_ips = f"{r['torch_images_per_sec']:12.1f}" if "torch_images_per_sec" in r else f"{'-':>12}"
    ratio = f"{r['ratio']:6.3f}" if "ratio" in r else f"{'-':>6}"
    if textbook:
      before = f"{r['textbook_ratio']:15.3f}" if "textbook_ratio" in r else f"{'-':>15}"
      ratio += (
        f" {r['textbook_images_per_sec']:15.1f} {before} {r['speedup_vs_textbook']:11.2f}x"
        if "textbook_images_per_sec" in r
        else f" {'-':>15} {'-':>15} {'-':>12}"
      )
    print(
      f"{r['dtype']:9} {r['batch_size']:5d} {r['jax_images_per_sec']:10.1f} {mfu('jax')} "
      f"{torch_ips} {mfu('torch'):>10} {ratio}"
    )
  peaks = {r["dtype"]: f"{r['peak_tflops']:.0f} TFLOP/s" for r in results if r.get("peak_tflops")}
  if peaks:
    print(
      f"MFU = images/s x {results[0]['train_gflop_per_image']:.2f} GFLOP over the peak of "
      f"{results[0]['device']}: " + ", ".join(f"{d} {p}" for d, p in peaks.items())
    )


def run_config(args: argparse.Namespace) -> dict:
  """Builds, warms up and times every side for one (batch size, dtype); returns the results.

  The sides take turns, ``--steps`` steps each per repeat: jax, then textbook (``--baseline``),
  then torch. On CPU a side's memory is the process's peak RSS once it is built and warmed up, so
  it includes the sides built before it.
  """
  rng = np.random.default_rng(0)
  images = rng.standard_normal((args.batch_size, args.input_size, args.input_size, args.in_channels), np.float32)
  labels = rng.integers(0, args.num_classes, args.batch_size).astype(np.int32)
  on_cpu = jax.default_backend() == "cpu"

  timed = []  # (Side, run_one) in turn order
  jax_models = [("jax", alexnet.AlexNet)]
  if args.baseline:
    jax_models.append(("textbook", textbook.TextbookAlexNet))
  for name, model_class in jax_models:
    side, step = build_jax_side(args, images, labels, model_class, name)
    time_steps(step, args.warmup)
    if on_cpu:
      side.peak_memory_mb = max_rss_mb()
    timed.append((side, step))
  torch_side, info, torch_peak = None, {}, None
  if not args.no_torch:
    torch_side, torch_step, info, torch_peak = build_torch_side(args, images, labels)
    time_steps(torch_step, args.warmup)
    timed.append((torch_side, torch_step))

  ratios = []
  for _ in range(args.repeats):
    medians = {side.name: statistics.median(time_steps(step, args.steps, side)) for side, step in timed}
    if "torch" in medians:
      ratios.append(medians["torch"] / medians["jax"])

  if torch_side is not None:
    torch_side.peak_memory_mb = max_rss_mb() if on_cpu else torch_peak()
  return summarize(args, [side for side, _ in timed], ratios, info)


def main(argv: list[str] | None = None) -> list[dict]:
  """Runs every (dtype, batch size) pair asked for in this one process, in that order."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  results = []
  for dtype in args.dtype:
    for batch_size in args.batch_size:
      result = run_config(argparse.Namespace(**{**vars(args), "dtype": dtype, "batch_size": batch_size}))
      results.append(result)
      if args.json:
        print(json.dumps(result), flush=True)
      else:
        print_table(result)
        print(flush=True)
  if len(results) > 1 and not args.json:
    print_summary(results)
  return results


def _positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
  return value


def _paper_shape(args: argparse.Namespace) -> bool:
  """Whether the model has the paper's width and three input channels (all the textbook model takes)."""
  return (args.width, args.in_channels) == (1.0, 3)


def _positive_float(text: str) -> float:
  value = float(text)
  if not value > 0:
    raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
  return value


def _nonnegative_int(text: str) -> int:
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
  return value


if __name__ == "__main__":
  main()

"""What the benchmark measured and how it is reported: the per-side record, FLOPs, MFU, the tables.

A :class:`Side` holds one framework's step times; :func:`summarize` turns the sides of one
(dtype, batch size) run into the flat dict that ``--json`` prints, :func:`print_table` shows one run
and :func:`print_summary` a sweep of runs (also from saved ``--json`` lines, as
``benchmarks/gpu_benchmark.sh`` does). Needs jax only for the device's name and backend.
"""

from __future__ import annotations

import dataclasses
import statistics

import jax
import numpy as np

from alexnet_jax.model import alexnet

# Dense peak TFLOP/s by device kind substring and dtype, for MFU. float32 uses the TF32 tensor-core
# peak because both frameworks run float32 convolutions and matmuls as TF32 on these GPUs.
PEAK_TFLOPS = {
  "H100": {"bfloat16": 989.0, "float32": 495.0},
  "H200": {"bfloat16": 989.0, "float32": 495.0},
  "A100": {"bfloat16": 312.0, "float32": 156.0},
}
# The sides in the order the tables list them.
SIDE_NAMES = ("jax", "textbook", "torch")


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


def peak_tflops(requested: float | None, dtype: str) -> tuple[float | None, str]:
  """The peak used for MFU (``--peak_tflops``, else the device's from :data:`PEAK_TFLOPS`) and where it came from."""
  if requested:
    return requested, "--peak_tflops"
  kind = jax.devices()[0].device_kind
  for key, peaks in PEAK_TFLOPS.items():
    if key in kind:
      return peaks[dtype], f"dense {dtype} peak of {key}"
  return None, "unknown device: pass --peak_tflops for MFU"


def summarize(args, sides: list[Side], ratios: list[float], info: dict) -> dict:
  """All results as one flat dict (the ``--json`` line); ``sides`` holds "jax" and maybe others."""
  flops = train_flops_per_image(args.input_size, args.towers, args.num_classes, args.width, args.in_channels)
  peak, peak_source = peak_tflops(args.peak_tflops, args.dtype)
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
    result.update(side_results(side, args.batch_size, flops, peak))
  result["peak_tflops"], result["peak_source"] = peak, peak_source
  if "torch_images_per_sec" in result:
    result["ratio"] = result["jax_images_per_sec"] / result["torch_images_per_sec"]
    result["ratio_per_repeat"] = ratios
  if "textbook_images_per_sec" in result:
    result["speedup_vs_textbook"] = result["jax_images_per_sec"] / result["textbook_images_per_sec"]
    if "torch_images_per_sec" in result:
      result["textbook_ratio"] = result["textbook_images_per_sec"] / result["torch_images_per_sec"]
  return result


def side_results(side: Side, batch_size: int, flops: float, peak: float | None) -> dict:
  """One side's numbers, each key prefixed with its name (``jax_images_per_sec``, ...)."""
  ips = side.images_per_sec(batch_size)
  p10, p90 = side.spread()
  numbers = {
    "images_per_sec": ips,
    "step_ms_median": 1e3 * side.median(),
    "step_ms_p10": 1e3 * p10,
    "step_ms_p90": 1e3 * p90,
    "cpu_ms_median": 1e3 * statistics.median(side.cpu_times),
    "compile_s": side.compile_s,
    "peak_memory_mb": side.peak_memory_mb,
    "tflops": ips * flops / 1e12,
    "mfu": ips * flops / 1e12 / peak if peak else None,
  }
  return {f"{side.name}_{key}": value for key, value in numbers.items()}


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
  for name in SIDE_NAMES:
    if f"{name}_images_per_sec" in result:
      print(side_row(result, name))
  if "ratio" in result:
    per_repeat = ", ".join(f"{r:.2f}" for r in result["ratio_per_repeat"])
    print(f"ratio jax/torch {result['ratio']:.3f} (per repeat: {per_repeat})")
  if "speedup_vs_textbook" in result:
    before = f", textbook/torch {result['textbook_ratio']:.3f}" if "textbook_ratio" in result else ""
    print(f"jax/textbook {result['speedup_vs_textbook']:.2f}x (what the CPU speed-ups bought){before}")


def side_row(result: dict, name: str) -> str:
  """One side's line of :func:`print_table`."""
  get = lambda key: result[f"{name}_{key}"]
  mb = f"{get('peak_memory_mb'):9.0f}" if get("peak_memory_mb") else f"{'-':>9}"
  mfu = f"{100 * get('mfu'):5.1f}%" if get("mfu") is not None else f"{'-':>6}"
  return (
    f"{name:8} {get('images_per_sec'):9.1f} {get('step_ms_median'):9.1f} "
    f"{get('step_ms_p10'):7.1f}-{get('step_ms_p90'):<7.1f} {get('cpu_ms_median'):8.1f} "
    f"{get('compile_s'):10.1f} {mb} {get('tflops'):8.3f} {mfu}"
  )


def print_summary(results: list[dict]) -> None:
  """One line per run: the table a sweep over batch sizes and dtypes is read from."""
  textbook = any("textbook_images_per_sec" in r for r in results)
  extra = f" {'textbook img/s':>15} {'textbook/torch':>15} {'jax/textbook':>12}" if textbook else ""
  print(
    f"{'dtype':9} {'batch':>5} {'jax img/s':>10} {'jax MFU':>8} {'torch img/s':>12} "
    f"{'torch MFU':>10} {'ratio':>6}{extra}"
  )
  for r in results:
    print(summary_row(r, textbook))
  peaks = {r["dtype"]: f"{r['peak_tflops']:.0f} TFLOP/s" for r in results if r.get("peak_tflops")}
  if peaks:
    print(
      f"MFU = images/s x {results[0]['train_gflop_per_image']:.2f} GFLOP over the peak of "
      f"{results[0]['device']}: " + ", ".join(f"{d} {p}" for d, p in peaks.items())
    )


def summary_row(r: dict, textbook: bool) -> str:
  """One run's line of :func:`print_summary`; ``textbook``: the table has the textbook columns."""
  mfu = lambda side: f"{100 * r[side + '_mfu']:7.1f}%" if r.get(side + "_mfu") else f"{'-':>8}"
  torch_ips = f"{r['torch_images_per_sec']:12.1f}" if "torch_images_per_sec" in r else f"{'-':>12}"
  ratio = f"{r['ratio']:6.3f}" if "ratio" in r else f"{'-':>6}"
  if textbook:
    before = f"{r['textbook_ratio']:15.3f}" if "textbook_ratio" in r else f"{'-':>15}"
    ratio += (
      f" {r['textbook_images_per_sec']:15.1f} {before} {r['speedup_vs_textbook']:11.2f}x"
      if "textbook_images_per_sec" in r
      else f" {'-':>15} {'-':>15} {'-':>12}"
    )
  return (
    f"{r['dtype']:9} {r['batch_size']:5d} {r['jax_images_per_sec']:10.1f} {mfu('jax')} "
    f"{torch_ips} {mfu('torch'):>10} {ratio}"
  )

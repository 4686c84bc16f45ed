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
The model flags are the model options (``model/options.py``) that the PyTorch reference takes too,
with their defaults, meanings and rules. Needs neither TensorFlow nor ml_collections: the GPU
machines have jax, flax, optax and torch only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from alexnet_jax import rules
from alexnet_jax.model import alexnet, options
from alexnet_jax.yardsticks import benchmark_jax, benchmark_report, textbook

PROG = "python -m alexnet_jax.benchmark"
# The model's dtypes less float16, which would need a loss scale that neither side applies.
DTYPES = ("float32", "bfloat16")
# The model options the PyTorch reference takes as well, hence the benchmark's model flags.
MODEL_FLAGS = ("num_classes", "towers", "input_size", "width", "in_channels")
# Those of them the textbook model takes (``--baseline``); the others must keep the paper's value.
TEXTBOOK_FLAGS = ("num_classes", "towers", "input_size")
# Flag values that only make text -> value conversions; the rules say what is allowed.
_CONVERTERS: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str}


class _OneLineErrors(argparse.ArgumentParser):
  """argparse with the project's promise for a bad flag: one ``error: ...`` line and exit status 1
  (argparse's own prints the usage block and exits 2)."""

  def error(self, message: str):
    print(f"error: {message} (see {PROG} --help)", file=sys.stderr)
    sys.exit(1)


def checked(rule: rules.Rule, convert: Callable[[str], Any]) -> Callable[[str], Any]:
  """argparse's ``type=`` for a flag held to ``rule``: the text converted, then checked, so that a bad
  value is argparse's one line naming the flag and saying what ``rule`` allows."""

  def parse(text: str):
    try:
      value = convert(text)
    except ValueError:
      value = text  # not even the right type: the rule rejects it below
    if rule.problem(value) is not None:
      raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected {rule.expected}")
    return value

  return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
  """Command-line options; an invalid value is one ``error:`` line naming the option, exit status 1."""
  parser = _OneLineErrors(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_sweep_flags(parser)
  add_model_flags(parser)
  add_run_flags(parser)
  args = parser.parse_args(argv)
  problem = model_problem(args)
  if problem:
    parser.error(problem)
  return args


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
  """The flags that take several values: each (dtype, batch size) pair is one run in this process."""
  parser.add_argument(
    "--batch_size",
    type=checked(rules.integer("batch_size", 1), int),
    nargs="+",
    default=[32],
    help="one or more; each (dtype, batch size) pair is one run in this process",
  )
  parser.add_argument(
    "--dtype",
    type=checked(rules.one_of("dtype", DTYPES), str),
    nargs="+",
    default=["float32"],
    help=f"one or more of {', '.join(DTYPES)}; bfloat16 = bf16 compute on float32 master weights",
  )


def add_model_flags(parser: argparse.ArgumentParser) -> None:
  """One flag per option of :data:`MODEL_FLAGS`, its type, default, help and rule read from ``model/options.py``."""
  group = parser.add_argument_group("model options (model/options.py; the PyTorch reference takes the same)")
  for option in options.OPTIONS:
    if option.name in MODEL_FLAGS:
      group.add_argument(
        f"--{option.name}",
        type=checked(option.rule, _CONVERTERS[type(option.default)]),
        default=option.default,
        help=option.meaning.replace("%", "%%") + " (default: %(default)s)",
      )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
  """How long to time, which sides, and how to report."""
  count = lambda name, minimum: checked(rules.integer(name, minimum), int)
  parser.add_argument("--steps", type=count("steps", 1), default=5, help="timed steps per repeat")
  parser.add_argument("--warmup", type=count("warmup", 0), default=2, help="untimed steps after compilation, per side")
  parser.add_argument(
    "--repeats", type=count("repeats", 1), default=3, help="alternating rounds of --steps steps for each side"
  )
  parser.add_argument("--no_torch", action="store_true", help="time the JAX step only")
  parser.add_argument(
    "--baseline",
    action="store_true",
    help="also time the textbook Flax AlexNet (yardsticks/textbook.py), the 'before' "
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
    "--peak_tflops",
    type=checked(rules.number("peak_tflops", 0.0, low_open=True), float),
    default=None,
    help="device peak for MFU; default: looked up from the device name",
  )
  parser.add_argument("--json", action="store_true", help="print one JSON line per run instead of a table")


def model_problem(args: argparse.Namespace) -> str | None:
  """What the flags' own rules cannot see: an input too small for pool5, a textbook model it cannot build."""
  try:
    alexnet.feature_map_sizes(args.input_size)
  except ValueError as error:
    return f"--input_size: {error}"
  defaults = options.defaults()
  changed = [f"--{name}" for name in MODEL_FLAGS if getattr(args, name) != defaults[name]]
  changed = [flag for flag in changed if flag[2:] not in TEXTBOOK_FLAGS]
  if args.baseline and changed:
    return f"--baseline: the textbook model takes only the paper's {' and '.join(changed)}"
  return None


def model_options(args: argparse.Namespace, names: tuple[str, ...] = MODEL_FLAGS) -> dict[str, Any]:
  """The model flags ``names`` as keyword arguments of a model."""
  return {name: getattr(args, name) for name in names}


def max_rss_mb() -> float:
  """Peak resident memory of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(run_one: Callable[[], None], steps: int, side: benchmark_report.Side | None = None) -> list[float]:
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


def jax_models(args: argparse.Namespace) -> list[tuple[str, Callable]]:
  """(side name, ``make_model(rngs)``) of each JAX side: the model, then the textbook one (``--baseline``)."""
  models = [("jax", lambda rngs: alexnet.AlexNet(**model_options(args), dtype=args.dtype, rngs=rngs))]
  if args.baseline:
    textbook_options = model_options(args, TEXTBOOK_FLAGS)
    models.append(("textbook", lambda rngs: textbook.TextbookAlexNet(**textbook_options, dtype=args.dtype, rngs=rngs)))
  return models


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
  for name, make_model in jax_models(args):
    side, step = benchmark_jax.build_jax_side(make_model, images, labels, name)
    time_steps(step, args.warmup)
    if on_cpu:
      side.peak_memory_mb = max_rss_mb()
    timed.append((side, step))
  info, torch_peak = {}, None
  if not args.no_torch:
    from alexnet_jax.yardsticks import benchmark_torch  # pylint: disable=g-import-not-at-top -- PyTorch optional

    torch_side, torch_step, info, torch_peak = benchmark_torch.build_torch_side(
      model_options(args),
      images,
      labels,
      dtype=args.dtype,
      compile_mode=args.torch_compile,
      channels_last_mode=args.torch_channels_last,
    )
    time_steps(torch_step, args.warmup)
    timed.append((torch_side, torch_step))

  ratios = []
  for _ in range(args.repeats):
    medians = {side.name: statistics.median(time_steps(step, args.steps, side)) for side, step in timed}
    if "torch" in medians:
      ratios.append(medians["torch"] / medians["jax"])
  if torch_peak is not None:
    timed[-1][0].peak_memory_mb = max_rss_mb() if on_cpu else torch_peak()
  return benchmark_report.summarize(args, [side for side, _ in timed], ratios, info)


def main(argv: list[str] | None = None) -> list[dict]:
  """Runs every (dtype, batch size) pair asked for in this one process, in that order."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  # The PyTorch reference shares the GPU with JAX in this process: do not let JAX grab 75 % of it
  # (read when JAX starts its GPU backend, on the first device query below).
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  results = []
  for dtype in args.dtype:
    for batch_size in args.batch_size:
      result = run_config(argparse.Namespace(**{**vars(args), "dtype": dtype, "batch_size": batch_size}))
      results.append(result)
      if args.json:
        print(json.dumps(result), flush=True)
      else:
        benchmark_report.print_table(result)
        print(flush=True)
  if len(results) > 1 and not args.json:
    benchmark_report.print_summary(results)
  return results


if __name__ == "__main__":
  main()

"""The training fields of a run's config, declared once: the update rule (``config.optimizer``), the
learning-rate schedule (``config.schedule``) and the run's own top-level fields (length, batch,
cadences, seed), each an :class:`Option` (rule, the paper's value, meaning, since when).

The validator checks them, the configs start from their defaults, docs/configuration.md lists them,
and a run recorded before a field existed reads back with its ``before`` value.
"""

from __future__ import annotations

import re

from alexnet_jax import rules
from alexnet_jax.option_tables import Option
from alexnet_jax.train import profiling

OPTIMIZERS = ("sgd", "paper_sgd")
SCHEDULES = ("constant", "cosine", "piecewise", "step", "plateau", "dexp")
# The date and commit of the schedule fields for cuda-convnet2's dexp (weights' and biases').
DEXP_SINCE = "2026-12-07 cde9c2f"
# The step counter is an int32 on the device: no run may plan more steps.
MAX_STEPS = 2**31 - 1
# Seeds: JAX keys (without x64) and the input pipeline keep a seed's low 32 bits, so a larger seed
# would silently repeat a smaller one (2**32 trains exactly like 0).
SEED_LIMIT = 2**32
FINE_TUNING_SINCE = "2026-12-07 16bfb66"  # init_from and trainable


def _compiles(pattern) -> bool:
  """Whether ``pattern`` is a string that compiles as a regular expression."""
  if not isinstance(pattern, str):
    return False
  try:
    re.compile(pattern)
  except re.error:
    return False
  return True


def _minus_one_or_at_least_one(field: str, meaning: str) -> rules.Rule:
  return rules.Rule(field, lambda v: rules.is_int(v) and (v == -1 or v >= 1), f"-1 ({meaning}) or an integer >= 1")


OPTIMIZER_OPTIONS = (
  Option(
    rules.one_of("name", OPTIMIZERS),
    "paper_sgd",
    "the paper's rule (the rate inside the momentum trace) or optax's `\"sgd\"`"
    " ([training.md](training.md#optimizer-and-schedules))",
  ),
  Option(rules.number("learning_rate", 0.0, low_open=True), 0.01, "eps, before the schedule"),
  Option(rules.number("momentum", 0.0, 1.0), 0.9, "the momentum m"),
  Option(rules.number("weight_decay", 0.0), 5e-4, "the L2 weight decay wd"),
  Option(
    rules.boolean("decay_biases"),
    False,
    "cuda-convnet2 (`wc`) and Caffe (`decay_mult: 0`) decay weights only",
    since="2026-12-01 3ea67c3",
    before=True,
  ),
  Option(
    rules.number("bias_lr_multiplier", 0.0, low_open=True),
    1.0,
    "the biases' learning rate over the weights' (the paper: the same; Caffe's `lr_mult: 2`; `:caffe`,"
    " `:cuda_convnet2`)",
    since="2026-12-06 55b4487",
  ),
)

SCHEDULE_OPTIONS = (
  Option(rules.one_of("name", SCHEDULES), "plateau", "the learning rate's schedule after the warm-up"),
  Option(rules.integer("warmup_steps", 0), 0, "linear warm-up from 0 first"),
  Option(
    rules.Rule("boundaries", lambda v: isinstance(v, (tuple, list)), "a tuple of fractions"),
    (),
    "piecewise: increasing fractions of training in (0, 1) where the rate is multiplied by `decay_factor`",
  ),
  Option(
    rules.integer("step_every", 0),
    0,
    "step: the rate is multiplied by `decay_factor` every this many steps (Caffe's `stepsize`; must be >= 1"
    ' with `"step"`)',
    since="2026-12-06 55b4487",
  ),
  Option(rules.number("decay_factor", 0.0, 1.0, low_open=True, high_open=False), 0.1, "piecewise, step and plateau"),
  Option(
    rules.number("dexp_target_factor", 1.0),
    1.0,
    "dexp: the rate falls from `learning_rate` to `learning_rate / dexp_target_factor` (cuda-convnet2's `tgtFactor`)",
    since=DEXP_SINCE,
  ),
  Option(
    rules.integer("dexp_steps", 1),
    1,
    "dexp: in this many equal parts of training, each at a constant rate, geometrically spaced (`numSteps`;"
    " [training.md](training.md#optimizer-and-schedules))",
    since=DEXP_SINCE,
  ),
  Option(
    rules.integer("bias_dexp_steps", 0),
    0,
    "0: the biases follow the weights' schedule at `optimizer.bias_lr_multiplier` times its rate; >= 1: a dexp"
    " schedule of their own in this many parts, from `learning_rate * bias_lr_multiplier` (cuda-convnet2's `epsB`)",
    since=DEXP_SINCE,
  ),
  Option(
    rules.number("bias_dexp_target_factor", 1.0),
    1.0,
    "the biases' own dexp schedule: its `tgtFactor` (with `bias_dexp_steps` >= 1)",
    since=DEXP_SINCE,
  ),
  Option(
    rules.integer("plateau_patience", 1),
    2,
    "evaluations without an improvement of the validation error before a drop (the paper gives none;"
    " per-epoch validation is noisy)",
  ),
  Option(
    rules.number("min_delta", 0.0, 1.0, high_open=False),
    0.001,
    "plateau: an improvement lowers the best top-1 error by more than this (0.1 point, 50 of ImageNet's 50,000"
    " validation images; [training.md](training.md#optimizer-and-schedules))",
    since="2026-12-06 55b4487",
    before=0.0,  # any lower error was an improvement
  ),
  Option(
    rules.integer("max_drops", 0),
    3,
    "plateau and step: at most this many drops (the paper divided the rate by 10 three times)",
  ),
)

RUN_OPTIONS = (
  Option(
    rules.Rule(
      "seed",
      lambda v: rules.is_int(v) and 0 <= v < SEED_LIMIT,
      "an integer in [0, 2**32): JAX keys and the input pipeline keep its low 32 bits, larger seeds repeat"
      " smaller ones",
    ),
    0,
    "one seed for the initialisation, the data order, the augmentation and dropout",
  ),
  Option(
    rules.number("label_smoothing", 0.0, 1.0),
    0.0,
    "the paper: plain cross-entropy ([training.md](training.md#label-smoothing-weight-averaging-test-time-flips))",
    since="2026-12-01 b4b9277",
  ),
  Option(
    rules.number("ema_decay", 0.0, 1.0),
    0.0,
    "> 0 keeps a moving average of the weights, which evaluations and the commands on a trained run use",
    since="2026-12-01 b4b9277",
  ),
  Option(
    rules.Rule("init_from", lambda v: isinstance(v, str), 'a string: "" or another run\'s work directory'),
    "",
    "fine-tuning: start from the newest checkpoint's weights of this run (trained or imported), fc8 anew where the"
    " class count differs; used only while this run has no checkpoint"
    " ([pretrained.md](pretrained.md#fine-tuning-on-your-own-folder))",
    since=FINE_TUNING_SINCE,
  ),
  Option(
    rules.Rule("trainable", _compiles, 'a regular expression over layer names, e.g. "fc6|fc7|fc8"'),
    "",
    "the layers trained (the pattern matches the whole name: conv1..conv5, fc6..fc8); the others frozen: no update,"
    ' no decay. `""` = all',
    since=FINE_TUNING_SINCE,
  ),
  Option(rules.integer("batch_size", 1), 128, "the global batch, split over the mesh's `data` axis"),
  Option(rules.number("num_epochs", 0.0), 90.0, "training length in passes over `train_split`"),
  Option(
    rules.Rule(
      "num_train_steps",
      lambda v: rules.is_int(v) and (v == -1 or 1 <= v <= MAX_STEPS),
      f"-1 (use num_epochs) or an integer in [1, {MAX_STEPS}] (the step counter is an int32)",
    ),
    -1,
    "> 0 overrides `num_epochs`",
  ),
  Option(rules.integer("log_every_steps", 1), 100, "progress line and TensorBoard train scalars"),
  Option(
    _minus_one_or_at_least_one("eval_every_steps", "once per epoch"),
    -1,
    "-1 = once per epoch (the plateau rule watches it); always at the end too",
  ),
  Option(rules.integer("checkpoint_every_steps", 1), 2_000, "and at the end"),
  Option(rules.integer("keep_checkpoints", 1), 3, "the newest kept"),
  Option(
    rules.Rule("profile_steps", profiling.is_window, '"" (off) or "A:B" with integers 1 <= A < B (steps A to B-1)'),
    "",
    '`"A:B"`: a `jax.profiler` trace of steps A..B-1 in WORKDIR/profile ([performance.md](performance.md#profiling))',
    since="2026-12-01 07585c7",
  ),
)

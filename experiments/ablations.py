"""The ablation sweeps, as data. Run one with ``python launch/sweep.py --sweep=NAME``.

Each function returns a :class:`alexnet_jax.sweeps.Sweep`: the base config, the overrides every run
shares (the sweep's scale), and the runs. The default scale is chosen so that ``lrn_dropout`` and
``pooling`` together (42 runs) finish in about an hour on a 2-core CPU; see experiments/README.md.
"""

from alexnet_jax.sweeps import Sweep, axis, product, seeds, zip_axes

FASHION_MNIST = "experiments/fashion_mnist.py"

# What every ablation run shares: a 2,000-image training subset seen 20 times by a quarter-width
# network, so that without dropout the model over-fits (what dropout is for) within a minute's run.
_TRAIN_IMAGES, _BATCH = 2000, 64
_STEPS_PER_EPOCH = _TRAIN_IMAGES // _BATCH  # 31: training drops the last partial batch
ABLATION_SCALE = {
  "train_split": f"train[:{_TRAIN_IMAGES}]",
  "model.width": 0.25,
  "batch_size": _BATCH,
  "num_epochs": 20.0,
  "schedule.warmup_steps": 40,
  "eval_every_steps": 2 * _STEPS_PER_EPOCH,
  "log_every_steps": _STEPS_PER_EPOCH,
  "checkpoint_every_steps": 10_000,
}

LRN_MODES = axis(
  "lrn",
  values={
    "off": {"model.lrn": False},
    "across": {"model.lrn": True, "model.lrn_region": "across"},
    "within": {"model.lrn": True, "model.lrn_region": "within"},
  },
)
DROPOUT_RATES = axis("dropout", "model.dropout_rate", [0.0, 0.25, 0.5, 0.75])
POOLING = axis(
  "pool",
  values={
    "overlapping_3/2": {"model.pool_window": 3, "model.pool_stride": 2},
    "plain_2/2": {"model.pool_window": 2, "model.pool_stride": 2},
  },
)


def lrn_dropout(num_seeds: int = 3) -> Sweep:
  """LRN {off, across, within} x dropout {0, 0.25, 0.5, 0.75} x seeds."""
  # Seeds vary slowest, so a sweep stopped early still has every cell at its first seeds.
  return Sweep(
    FASHION_MNIST,
    product(seeds(num_seeds), LRN_MODES, DROPOUT_RATES),
    ABLATION_SCALE,
    curves={"lrn": "across", "dropout": (0.0, 0.5)},
  )  # the paper's net with and without dropout


def pooling(num_seeds: int = 3) -> Sweep:
  """Overlapping 3/2 vs plain 2/2 max-pooling x seeds (LRN across, dropout 0.5)."""
  return Sweep(FASHION_MNIST, product(seeds(num_seeds), POOLING), {**ABLATION_SCALE, "model.dropout_rate": 0.5})


def smoke(num_seeds: int = 1) -> Sweep:
  """Tiny end-to-end check of the sweep machinery: (LRN off, dropout 0) and (LRN across, dropout 0.5)."""
  return Sweep(FASHION_MNIST + ":smoke", product(seeds(num_seeds), zip_axes(LRN_MODES[:2], DROPOUT_RATES[::2])))


SWEEPS = {"lrn_dropout": lrn_dropout, "pooling": pooling, "smoke": smoke}

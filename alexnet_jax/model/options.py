"""Every AlexNet option, declared once: its rule (name and allowed values), the paper's default, its meaning.

Everything else reads :data:`OPTIONS`: ``AlexNet(num_classes, **options)`` takes a :class:`ModelOptions`
built from it (each value checked against its rule), the config validator reports the same rules as
``config.model.<option>``, the configs start ``config.model`` from :func:`model_config`, the table of
docs/configuration.md is :func:`markdown_table` (``python -m alexnet_jax.model.options`` prints it; a
test keeps the page equal to it), and a run recorded before an option existed reads back with its
default (``config/added_fields.py``). Adding an option is one :class:`~alexnet_jax.option_tables.Option`
here and the code that uses it. Pure Python: importing it pulls in no framework.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from alexnet_jax import option_tables, rules
from alexnet_jax.option_tables import Option

if TYPE_CHECKING:  # the model and the benchmark import this module; they run without ml_collections
  import ml_collections

LRN_REGIONS = ("across", "within")
LRN_POSITIONS = ("after_relu", "before_relu")
INIT_SCHEMES = ("paper", "caffe", "cuda_convnet2", "he")  # alexnet._init_scheme
DTYPES = ("float32", "bfloat16", "float16")
SINCE_REFERENCE_NETS = "2026-12-07 a2fba51"  # the options that hold BVLC's and torchvision's nets


def _channel_counts(field: str, count: int) -> rules.Rule:
  """``count`` positive integers (a tuple, or a list as a recorded config.json holds it)."""
  return rules.Rule(
    field,
    lambda value: (
      isinstance(value, (tuple, list)) and len(value) == count and all(rules.is_int(c) and c >= 1 for c in value)
    ),
    f"{count} positive integers, conv1's to conv5's kernel counts",
  )


# The LRN layer's own hyper-parameters (``layers.LocalResponseNorm`` checks them); AlexNet's lrn_*
# options are these, prefixed. Values are the literal formula's (docs/paper_and_references.md).
LRN_OPTIONS = (
  Option(
    rules.one_of("region", LRN_REGIONS),
    "across",
    '`"across"` n adjacent channels (the paper), `"within"` an n x n spatial window of the same channel',
  ),
  Option(rules.odd_integer("size"), 5, "the window's width n"),
  Option(rules.number("k", 0.0, low_open=True), 2.0, "the additive constant k of the denominator"),
  Option(rules.number("alpha", 0.0), 1e-4, "alpha, on the plain sum of squares (cuda-convnet2's effective one: 2e-5)"),
  Option(rules.number("beta", 0.0), 0.75, "the denominator's exponent beta"),
)

# cuda-convnet2's cnorm2a/b (layer-params-imagenet-2gpu-model.cfg: type=rnorm, size 5, scale=0.001, pow=0.75,
# minDiv unset, so 1): its rnorm is a within-channel normalisation over a size x size window, and its layer.py
# divides an rnorm's scale by size**2 (a cmrnorm's by size): the literal alpha is 0.001 / 25 = 4e-5.
CNORM2 = dict(region="within", size=5, k=1.0, alpha=0.001 / 5**2, beta=0.75)
# The date and commit of the options for cuda-convnet2's two-tower files (per-layer LRN position, cnorm2).
CUDA_CONVNET2_SINCE = "2026-12-07 cde9c2f"


def lrn_positions(value: str) -> tuple[str, ...]:
  """conv1's and conv2's LRN position from ``lrn_position``: one name for both, or two joined by a comma
  (conv1's first)."""
  parts = tuple(value.split(","))
  return parts * 2 if len(parts) == 1 else parts


def _is_lrn_position(value) -> bool:
  if not isinstance(value, str):
    return False
  parts = lrn_positions(value)
  return len(parts) == 2 and all(part in LRN_POSITIONS for part in parts)


OPTIONS = (
  Option(rules.integer("num_classes", 1), 1000, "fc8's outputs: the dataset's classes"),
  Option(rules.one_of("towers", (1, 2)), 2, "2: the paper's two towers; 1: full connectivity between all maps"),
  Option(rules.number("width", 0.0, low_open=True), 1.0, "multiplies every layer's channel count"),
  Option(
    _channel_counts("channels", 5),
    (96, 256, 384, 384, 256),
    "conv1's to conv5's kernel counts (before `width`); torchvision's net: (64, 192, 384, 256, 256)",
    since=SINCE_REFERENCE_NETS,
  ),
  Option(rules.integer("fc_width", 1), 4096, "fc6's and fc7's outputs (before `width`)", since=SINCE_REFERENCE_NETS),
  Option(
    rules.integer("conv1_padding", 0),
    0,
    "zeros around the input before conv1 (the paper and Caffe: 0; torchvision: 2)",
    since=SINCE_REFERENCE_NETS,
  ),
  Option(
    rules.integer("adaptive_pool", 0),
    0,
    "what stands between pool5 and fc6: 0 nothing (the paper), n an adaptive average pool to n x n"
    " (torchvision's `AdaptiveAvgPool2d(6)`: fc6 then reads n x n maps whatever the input size)",
    since=SINCE_REFERENCE_NETS,
  ),
  Option(
    rules.integer("input_size", 1),
    227,
    "side of the square input, any size whose pool5 is at least 1x1 (>= 67 with 3/2 pooling); the configs tie"
    " it to `input.crop_size`",
  ),
  Option(
    rules.integer("in_channels", 1),
    3,
    "1 for a grey dataset: conv1 reads the grey image instead of its RGB replica (the same function for a"
    " third of conv1's work)",
    since="2026-12-01 64f4ac8",
  ),
  Option(rules.boolean("lrn"), True, "False removes both LRN layers (after conv1 and conv2)"),
  *(option_tables.prefixed("lrn_", option) for option in LRN_OPTIONS),
  Option(
    rules.Rule(
      "lrn_position", _is_lrn_position, f"one of {LRN_POSITIONS}, or two of them joined by a comma (conv1's, conv2's)"
    ),
    "after_relu",
    '`"after_relu"` (the paper\'s text) or `"before_relu"` (the lecture) for both LRN layers, or a pair for'
    " conv1's and conv2's: cuda-convnet2's two-tower files normalise conv1 before its ReLU, conv2 after",
  ),
  Option(
    rules.boolean("lrn_per_tower"),
    True,
    "each tower normalises its own maps; False lets the channel window cross the tower boundary (Caffe's"
    " one-GPU model)",
  ),
  Option(
    rules.boolean("cnorm2"),
    False,
    "cuda-convnet2's `cnorm2`: after conv2's LRN and ReLU, a within-channel LRN over 5x5 pixels, k=1,"
    " alpha=4e-5 (`scale=0.001` / 25), beta=0.75 (`model/options.py` `CNORM2`)",
    since=CUDA_CONVNET2_SINCE,
  ),
  Option(rules.number("dropout_rate", 0.0, 1.0), 0.5, "dropout on fc6's and fc7's outputs"),
  Option(
    rules.integer("pool_window", 1),
    3,
    "max-pool window: 3/2 overlaps (the paper), 2/2 is its non-overlapping comparison",
  ),
  Option(rules.integer("pool_stride", 1), 2, "max-pool stride"),
  Option(
    rules.one_of("init", INIT_SCHEMES),
    "paper",
    '`"paper"`: weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7; `"caffe"`: std 0.005 in fc6/fc7,'
    ' bias 0.1; `"cuda_convnet2"`: std 0.03 in conv3-conv5; `"he"`: He-normal, zero biases (trains from scratch'
    " on small data)",
  ),
  Option(
    rules.boolean("fc8_zero_init"),
    False,
    "fc8's weights start at zero: the first logits are 0 and the first loss ln(num_classes)",
    since="2026-12-01 b40fbe8",
  ),
  Option(
    rules.one_of("dtype", DTYPES),
    "float32",
    'the computation\'s dtype by name (`"bfloat16"`, `"float16"`); parameters stay float32',
  ),
)
RULES = tuple(option.rule for option in OPTIONS)


def defaults() -> dict[str, Any]:
  """Every option's name -> the paper's value, in :data:`OPTIONS`' order."""
  return option_tables.defaults(OPTIONS)


def _check(self) -> None:
  rules.check_options("AlexNet", RULES, vars(self))


ModelOptions = dataclasses.make_dataclass(
  "ModelOptions",
  [(option.name, type(option.default), dataclasses.field(default=option.default)) for option in OPTIONS],
  frozen=True,
  namespace={
    "__doc__": "One value per option of :data:`OPTIONS` (defaults: the paper's); ``rules.OptionError`` "
    "names every value that breaks its rule, a TypeError an unknown option.",
    "__module__": __name__,
    "__post_init__": _check,
  },
)


def model_config() -> ml_collections.ConfigDict:
  """``config.model`` with every option at the paper's value; a config then sets what differs."""
  return option_tables.section_config(OPTIONS)


def markdown_table() -> str:
  """The options as docs/configuration.md's table: option, default, meaning."""
  rows = ["| option | default | meaning |", "| --- | --- | --- |"]
  for option in OPTIONS:
    rows.append(f"| `{option.name}` | {option_tables.format_value(option.default)} | {option.meaning} |")
  return "\n".join(rows)


if __name__ == "__main__":
  print(markdown_table())

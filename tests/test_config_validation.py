"""config_validation: every user-settable field rejects wrong types and out-of-range values clearly.

The invalid values below are written from the field's meaning (not read back from the rule table),
so a rule that is too loose fails here.
"""

import math
import re

import ml_collections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alexnet_jax.data import options as data_options
from alexnet_jax.train import validation
from experiments import cifar10, fashion_mnist, imagenet2012

NOT_A_NUMBER = st.one_of(st.text(max_size=5), st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
NOT_AN_INT = st.one_of(
  NOT_A_NUMBER, st.floats(allow_nan=True).filter(lambda x: not x.is_integer() if math.isfinite(x) else True)
)
NOT_A_STRING = st.one_of(st.integers(), st.floats(), st.none(), st.booleans())
NOT_A_BOOL = st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none())
UNKNOWN_NAME = st.text(max_size=12)


def below(low, *, inclusive=False):
  """Numbers below ``low`` (or <= it), ints and floats, plus NaN and the wrong types."""
  ints = st.integers(max_value=low if inclusive else math.ceil(low) - 1)
  floats = st.floats(max_value=low, exclude_max=not inclusive, allow_nan=False)
  return st.one_of(ints, floats, st.just(math.nan), NOT_A_NUMBER)


def int_below(low):
  return st.one_of(st.integers(max_value=low - 1), NOT_AN_INT)


def outside_unit(*, zero_ok=True, one_ok=False):
  bad = [
    st.floats(max_value=0.0, exclude_max=zero_ok, allow_nan=False),
    st.floats(min_value=1.0, exclude_min=one_ok, allow_nan=False),
    st.just(math.nan),
    NOT_A_NUMBER,
  ]
  return st.one_of(*bad)


def minus_one_or_positive():
  return st.one_of(st.integers(max_value=-2), st.just(0), NOT_AN_INT)


INVALID = {
  "seed": st.one_of(int_below(0), st.integers(min_value=2**32)),  # 2**32 would repeat seed 0
  "dataset": UNKNOWN_NAME.filter(lambda s: s not in data_options.DATASETS),
  "data_dir": NOT_A_STRING,
  "manual_dir": NOT_A_STRING,
  "image_folder": NOT_A_STRING,
  "holdout_fraction": outside_unit(zero_ok=True, one_ok=False),
  "train_split": st.one_of(NOT_A_STRING, st.just("")),
  "eval_split": st.one_of(NOT_A_STRING, st.just("")),
  "input.resize_size": int_below(1),
  "input.resize": UNKNOWN_NAME.filter(lambda s: s not in ("shorter_side", "warp")),
  "input.crop_size": int_below(1),
  "input.random_crop": NOT_A_BOOL,
  "input.random_flip": NOT_A_BOOL,
  "input.pca_noise_std": below(0.0),
  "input.eval_crops": UNKNOWN_NAME.filter(lambda s: s not in ("center", "center_flip", "ten_crop")),
  "input.normalization": UNKNOWN_NAME.filter(lambda s: s not in ("standardize", "subtract_mean")),
  "input.pca_noise_form": UNKNOWN_NAME.filter(lambda s: s not in ("cuda_convnet", "fb_resnet")),
  "input.mean": UNKNOWN_NAME.filter(lambda s: s not in ("image", "channel")),
  "input.mean_crop": UNKNOWN_NAME.filter(lambda s: s not in ("at_view", "center")),
  "input.mean_pixel": st.one_of(
    st.lists(st.floats(0, 255), min_size=2, max_size=2),  # neither () nor one per channel
    st.lists(st.floats(min_value=255, exclude_min=True, allow_nan=False), min_size=3, max_size=3),
    st.lists(st.floats(max_value=0, exclude_max=True, allow_nan=False), min_size=1, max_size=1),
    NOT_A_NUMBER.filter(lambda v: not isinstance(v, (list, tuple))),
  ),
  "input.mean_image_file": NOT_A_STRING,
  "input.use_store": NOT_A_BOOL,
  "input.read_threads": int_below(0),
  "input.train_scale": below(0.0, inclusive=True),
  "eval_max_examples": minus_one_or_positive(),
  "model.num_classes": int_below(1),
  "model.towers": st.one_of(st.integers().filter(lambda t: t not in (1, 2)), st.text(max_size=3)),
  "model.width": below(0.0, inclusive=True),
  "model.channels": st.one_of(
    st.lists(st.integers(1, 512), min_size=4, max_size=4),
    st.lists(st.integers(max_value=0), min_size=5, max_size=5),
    NOT_AN_INT,
  ),
  "model.fc_width": int_below(1),
  "model.conv1_padding": int_below(0),
  "model.adaptive_pool": int_below(0),
  "model.input_size": int_below(1),
  "model.in_channels": int_below(1),
  "model.lrn": NOT_A_BOOL,
  "model.lrn_per_tower": NOT_A_BOOL,
  "model.lrn_region": UNKNOWN_NAME.filter(lambda s: s not in ("across", "within")),
  "model.lrn_size": st.one_of(int_below(1), st.integers(min_value=1).map(lambda n: 2 * n)),
  "model.lrn_k": below(0.0, inclusive=True),
  "model.lrn_alpha": below(0.0),
  "model.lrn_beta": below(0.0),
  "model.lrn_position": UNKNOWN_NAME.filter(lambda s: s not in ("after_relu", "before_relu")),
  "model.dropout_rate": outside_unit(zero_ok=True, one_ok=False),
  "model.pool_window": int_below(1),
  "model.pool_stride": int_below(1),
  "model.init": UNKNOWN_NAME.filter(lambda s: s not in ("paper", "caffe", "cuda_convnet2", "he")),
  "model.cnorm2": NOT_A_BOOL,
  "model.fc8_zero_init": NOT_A_BOOL,
  "model.dtype": st.sampled_from(["float64", "int8", "fp16", "", "bf16"]),
  "optimizer.name": st.sampled_from(["adam", "SGD", "momentum", ""]),
  "optimizer.learning_rate": below(0.0, inclusive=True),
  "optimizer.momentum": outside_unit(zero_ok=True, one_ok=False),
  "optimizer.weight_decay": below(0.0),
  "optimizer.decay_biases": NOT_A_BOOL,
  "optimizer.bias_lr_multiplier": below(0.0, inclusive=True),
  "schedule.name": st.sampled_from(["exponential", "Cosine", "Step", ""]),
  "schedule.warmup_steps": int_below(0),
  "schedule.decay_factor": outside_unit(zero_ok=False, one_ok=True),
  "schedule.plateau_patience": int_below(1),
  "schedule.max_drops": int_below(0),
  "schedule.step_every": int_below(0),
  "schedule.dexp_target_factor": below(1.0),
  "schedule.dexp_steps": int_below(1),
  "schedule.bias_dexp_steps": int_below(0),
  "schedule.bias_dexp_target_factor": below(1.0),
  "schedule.min_delta": outside_unit(zero_ok=True, one_ok=True),
  "schedule.boundaries": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none()),
  "label_smoothing": outside_unit(zero_ok=True, one_ok=False),
  "ema_decay": outside_unit(zero_ok=True, one_ok=False),
  "init_from": NOT_A_STRING,
  "trainable": st.one_of(NOT_A_STRING, st.sampled_from(["fc(6", "[conv", "*", "fc6|(", "(?P<"])),
  "batch_size": int_below(1),
  "num_epochs": below(0.0),
  "num_train_steps": st.one_of(minus_one_or_positive(), st.integers(min_value=2**31)),  # an int32 step
  "log_every_steps": int_below(1),
  "eval_every_steps": minus_one_or_positive(),
  "checkpoint_every_steps": int_below(1),
  "keep_checkpoints": int_below(1),
  "profile_steps": st.one_of(
    NOT_A_STRING,
    st.sampled_from(["1:1", "3:2", "0:2", "2", "2:", "a:b", "2:4:6"]),
    UNKNOWN_NAME.filter(lambda s: s and not re.fullmatch(r"[0-9]+:[0-9]+", s)),
  ),
  "tower_parallel": int_below(1),
  "parallelism": st.sampled_from(["data", "model", "Towers", ""]),
}


def _set(config, dotted, value):
  *parents, name = dotted.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  if isinstance(node, dict):
    node[name] = value
  else:
    with node.ignore_type():
      node[name] = value


def test_every_config_field_has_an_invalid_value_strategy():
  assert {rule.field for rule in validation.FIELD_RULES} == set(INVALID)


@pytest.mark.parametrize("config_module", [fashion_mnist, cifar10, imagenet2012])
@pytest.mark.parametrize("variant", [None, "smoke"])
def test_shipped_configs_are_valid(config_module, variant):
  validation.validate(config_module.get_config(variant), device_count=4)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), field=st.sampled_from(sorted(INVALID)))
def test_an_invalid_value_names_the_field_the_value_and_what_is_allowed(data, field):
  value = data.draw(INVALID[field], label=field)
  config = fashion_mnist.get_config("smoke").to_dict()  # a plain dict keeps the value's type as is
  _set(config, field, value)
  with pytest.raises(validation.ConfigError) as error:
    validation.validate(config, device_count=4)
  assert f"config.{field}={value!r} is not allowed: expected " in str(error.value)


@pytest.mark.parametrize(
  "changes,device_count,expected",
  [
    (
      {"input.resize_size": 76, "input.crop_size": 80, "model.input_size": 80},
      1,
      "config.input.crop_size=80 must be <= config.input.resize_size=76",
    ),
    ({"model.input_size": 60}, 1, "config.model.input_size=60 must equal config.input.crop_size=67"),
    ({"batch_size": 6}, 4, "config.batch_size=6 must be divisible by the data-parallel size (4"),
    ({"batch_size": 6, "tower_parallel": 2}, 8, "data-parallel size (4 = 8 devices / tower_parallel 2)"),
    ({"tower_parallel": 2}, 3, "config.tower_parallel=2 must divide the number of devices (3)"),
    (
      {"tower_parallel": 2, "model.towers": 1},
      4,
      "config.tower_parallel=2 must be 1 (data parallelism only) or equal config.model.towers=1",
    ),
    ({"num_train_steps": -1, "num_epochs": 0.0}, 1, "config.num_epochs=0.0 must be > 0"),
    ({"schedule.boundaries": (0.75, 0.5)}, 1, "must be increasing fractions"),
    ({"schedule.boundaries": (0.5, 1.5)}, 1, "must be increasing fractions"),
    ({"model.in_channels": 2}, 1, "config.model.in_channels=2 must be 3 (RGB; grey images are replicated) or 1"),
    ({"dataset": "cifar10", "model.in_channels": 1}, 1, "(grey datasets only; cifar10's images have 3 channels)"),
    (
      {"model.in_channels": 1, "input.pca_noise_std": 0.1},
      1,
      "config.input.pca_noise_std=0.1 must be 0 with config.model.in_channels=1",
    ),
  ],
)
def test_cross_field_constraints(changes, device_count, expected):
  config = ml_collections.ConfigDict(fashion_mnist.get_config("smoke").to_dict())  # no references
  for field, value in changes.items():
    _set(config, field, value)
  with pytest.raises(validation.ConfigError, match="invalid config") as error:
    validation.validate(config, device_count=device_count)
  assert expected in str(error.value)


def test_every_problem_is_listed_at_once():
  config = fashion_mnist.get_config("smoke")
  config.model.dropout_rate = 1.0
  config.optimizer.name = "adam"
  with pytest.raises(validation.ConfigError) as error:
    validation.validate(config, device_count=1)
  assert "model.dropout_rate=1.0" in str(error.value) and "optimizer.name='adam'" in str(error.value)
  assert "\n" not in str(error.value)  # one error: line, the problems joined

"""The model's options are declared once (``model/options.py``) and everything else follows them:
AlexNet's arguments, the validator's ``config.model`` rules, the configs' model section, and the values
an older run's ``config.json`` lacks (``config/added_fields.py``)."""

import dataclasses
import json
import os
import shutil

import jax.numpy as jnp
import pytest
from flax import nnx

from alexnet_jax import rules, utils
from alexnet_jax.config import added_fields
from alexnet_jax.inference import trained_run
from alexnet_jax.model import alexnet, layers, options
from alexnet_jax.train import validation
from experiments import cifar10, fashion_mnist, imagenet2012

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The config.json a Fashion-MNIST run wrote on 2026-11-27 (8e1fe69), when runs began recording it.
FIRST_RECORDED_CONFIG = os.path.join(REPO, "tests", "support", "config_2026-11-27.json")


def test_options_have_one_declaration_each_and_a_default_their_rule_allows():
  names = [option.name for option in options.OPTIONS]
  assert len(names) == len(set(names))
  assert [field.name for field in dataclasses.fields(options.ModelOptions)] == names
  for option in options.OPTIONS:
    assert option.rule.problem(option.default) is None, option.name


@pytest.mark.parametrize("config_module", [imagenet2012, fashion_mnist, cifar10])
def test_every_config_sets_every_option_and_nothing_else_under_model(config_module):
  assert sorted(config_module.get_config().model.keys()) == sorted(options.defaults())


def test_the_paper_config_is_the_declared_defaults_with_the_input_following_the_crops():
  config = imagenet2012.get_config()
  assert config.model.to_dict() == options.defaults()
  config.input.crop_size = 99
  assert config.model.input_size == 99


def test_the_validator_and_the_lrn_layer_check_the_declared_rules_themselves():
  model_rules = {rule.field: rule for rule in validation.FIELD_RULES if rule.field.startswith("model.")}
  assert list(model_rules) == [f"model.{option.name}" for option in options.OPTIONS]
  for option in options.OPTIONS:
    assert model_rules[f"model.{option.name}"].check is option.rule.check
  lrn_checks = {f"lrn_{rule.field}": rule.check for rule in layers.LRN_RULES}
  assert all(lrn_checks[name] is model_rules[f"model.{name}"].check for name in lrn_checks)


def test_alexnet_takes_the_options_by_name_and_refuses_an_unknown_one():
  model = nnx.eval_shape(lambda: alexnet.AlexNet(10, width=0.125, input_size=67, dtype="bfloat16", rngs=nnx.Rngs(0)))
  assert (model.num_classes, model.input_size, model.fc8.dtype) == (10, 67, jnp.bfloat16)
  with pytest.raises(TypeError, match="widht"):
    alexnet.AlexNet(10, widht=0.5)
  with pytest.raises(rules.OptionError, match="AlexNet option dtype='float64' is not allowed"):
    alexnet.AlexNet(10, dtype="float64")


def _recorded(tmp_path, config: dict) -> str:
  with open(tmp_path / "config.json", "w") as f:
    json.dump(config, f)
  return str(tmp_path)


def test_a_config_json_lacking_later_options_reads_back_with_what_runs_did_before_them(tmp_path):
  recorded = json.loads(fashion_mnist.get_config("smoke").to_json_best_effort())
  del recorded["model"]["fc8_zero_init"], recorded["model"]["in_channels"]  # the recipe sets True and 1
  del recorded["profile_steps"], recorded["ema_decay"], recorded["optimizer"]["decay_biases"]
  config = trained_run.read_config(_recorded(tmp_path, recorded))
  assert (config.model.fc8_zero_init, config.model.in_channels) == (False, 3)  # the declared defaults
  assert (config.profile_steps, config.ema_decay) == ("", 0.0)  # no trace, no moving average
  assert config.optimizer.decay_biases is True  # biases were decayed before the option existed
  assert config.model.width == 0.125  # recorded fields keep the run's values
  validation.validate(config, device_count=1)


def test_a_command_says_once_which_fields_an_older_run_lacks(tmp_path, caplog):
  """The commands read config.json at their quick check and again when loading: one warning, not two."""
  recorded = json.loads(fashion_mnist.get_config("smoke").to_json_best_effort())
  del recorded["input"]["train_scale"]
  workdir = _recorded(tmp_path, recorded)
  trained_run._warn_predates.cache_clear()
  trained_run.read_config(workdir)
  trained_run.read_config(workdir)
  assert [r.getMessage() for r in caplog.records if "predates" in r.getMessage()] == [
    "The run's config predates input.train_scale; using what runs did before them"
  ]


def test_the_first_recorded_config_still_reads_back_valid(tmp_path):
  """A field added without its value before (``added_fields.py`` or the option's ``since``) fails here."""
  shutil.copy(FIRST_RECORDED_CONFIG, tmp_path / "config.json")
  config = trained_run.read_config(str(tmp_path))
  validation.validate(config, device_count=1)
  assert (config.model.width, config.input.resize_size, config.batch_size) == (0.5, 76, 128)


def test_added_fields_are_config_fields_whose_value_before_is_allowed():
  config, before = fashion_mnist.get_config(), added_fields.values_before()
  assert set(before) - set(utils.flatten(config.to_dict())) == set()
  config.update_from_flattened_dict(before)
  validation.validate(config, device_count=1)

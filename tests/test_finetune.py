"""Fine-tuning: freezing layers (``config.trainable``) and starting from another run (``config.init_from``)."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from support import smoke_run

from alexnet_jax.inference import trained_run
from alexnet_jax.model import alexnet
from alexnet_jax.parallel import sharding
from alexnet_jax.train import checkpoints, init_from, optimizers, steps, validation
from alexnet_jax.train import state as state_lib
from experiments import fashion_mnist

HEAD = "fc6|fc7|fc8"


def _config(**fields):
  config = fashion_mnist.get_config("smoke")
  config.optimizer.weight_decay = 0.01  # large, so that a decayed frozen weight would show
  for name, value in fields.items():
    *parents, leaf = name.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def _layers(params) -> dict[tuple[str, ...], str]:
  """Every parameter's path and its layer name."""
  paths = [alexnet.param_path(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
  return {path: alexnet.layer_name(path) for path in paths}


def _by_path(params) -> dict:
  return {alexnet.param_path(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def test_layer_names_of_the_params_are_the_models_layers():
  params = nnx.state(state_lib.create_model(_config(), nnx.Rngs(0)), nnx.Param)
  assert sorted(set(_layers(params).values())) == sorted(alexnet.LAYER_NAMES)


@pytest.mark.parametrize("rule", ["paper_sgd", "sgd"])
def test_frozen_params_keep_their_values_and_the_trainable_ones_move(rule):
  params = nnx.state(state_lib.create_model(_config(), nnx.Rngs(0)), nnx.Param)
  tx = optimizers.make_optimizer(rule, trainable="conv5|fc7", learning_rate=0.1, weight_decay=0.01)
  opt_state = tx.init(params)
  rng = np.random.default_rng(0)
  moved = params
  for _ in range(3):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)
    updates, opt_state = tx.update(grads, opt_state, moved)
    moved = jax.tree.map(lambda w, u: w + u, moved, updates)
  before, after = _by_path(params), _by_path(moved)
  for path, layer in _layers(params).items():
    if layer in ("conv5", "fc7"):
      assert not np.array_equal(before[path], after[path]), path
    else:
      assert np.array_equal(before[path], after[path]), path
  rate = optimizers.set_learning_rate(opt_state, 0.5).hyperparams["learning_rate"]  # the rate stays settable
  assert float(rate) == 0.5


def test_no_pattern_trains_every_layer_with_the_optimizer_as_before():
  plain = optimizers.make_optimizer("sgd", learning_rate=0.1)
  everything = optimizers.make_optimizer("sgd", trainable="", learning_rate=0.1)
  params = {"fc8": {"kernel": jnp.ones((2, 3))}}
  assert jax.tree.structure(plain.init(params)) == jax.tree.structure(everything.init(params))


@pytest.mark.slow
def test_the_train_step_leaves_frozen_layers_bitwise_unchanged():
  config = _config(trainable=HEAD)
  mesh = sharding.create_mesh(1)
  tx = optimizers.create_optimizer(config)
  model_def, state = state_lib.create_train_state(config, mesh, tx)
  step = steps.jit_train_step(
    model_def=model_def, tx=tx, schedule=optimizers.create_schedule(config, 10), mesh=mesh, ema_decay=0.0
  )
  rng = np.random.default_rng(0)
  images = rng.normal(size=(16, config.input.crop_size, config.input.crop_size, 1)).astype(np.float32)
  batch = sharding.global_batch({"image": images, "label": rng.integers(0, 10, 16).astype(np.int32)}, mesh)
  before = _by_path(state.params)
  for _ in range(3):
    state, _ = step(state, batch)
  after = _by_path(state.params)
  for path, layer in _layers(state.params).items():
    assert np.array_equal(before[path], after[path]) == (layer not in HEAD.split("|")), path


@pytest.mark.parametrize(
  ("pattern", "words"),
  [("fc(6", "config.trainable='fc(6' is not allowed: expected a regular expression"), ("fc9", "matches no layer")],
)
def test_a_trainable_pattern_that_does_not_compile_or_names_no_layer_is_one_error(pattern, words):
  with pytest.raises(validation.ConfigError, match="config.trainable") as raised:
    validation.validate(_config(trainable=pattern), device_count=1)
  assert words in str(raised.value) and "\n" not in str(raised.value)


def _saved_run(tmp_path, config) -> tuple[str, state_lib.TrainState]:
  """A run directory holding ``config``'s freshly initialised state as its checkpoint of step 7."""
  workdir = str(tmp_path / "source")
  mesh = sharding.create_mesh(1)
  _, state = state_lib.create_train_state(config, mesh, optimizers.create_optimizer(config))
  state = state.replace(step=jnp.int32(7))
  checkpointer = checkpoints.Checkpointer(checkpoints.checkpoint_dir(workdir), keep=1, every_steps=1)
  checkpointer.save(7, state, {"input_position": 7}, force=True)
  checkpointer.close()
  return workdir, state


def _new_state(config):
  mesh = sharding.create_mesh(1)
  return state_lib.create_train_state(config, mesh, optimizers.create_optimizer(config))[1]


def test_init_from_takes_every_layer_and_redraws_fc8_for_another_class_count(tmp_path, caplog):
  source_dir, source = _saved_run(tmp_path, _config(seed=1, ema_decay=0.0))
  fresh = _new_state(_config(**{"model.num_classes": 3, "trainable": HEAD}))
  started = init_from.start_from(fresh, source_dir)
  assert int(started.step) == 0
  theirs, ours, new = _by_path(source.params), _by_path(fresh.params), _by_path(started.params)
  for path, layer in _layers(started.params).items():
    expected = ours[path] if layer == "fc8" else theirs[path]
    np.testing.assert_array_equal(new[path], expected, err_msg=str(path))
  assert new[("fc8", "kernel", "value")].shape[-1] == 3
  assert any("10 classes, this run 3" in record.getMessage() for record in caplog.records)
  assert jax.tree.structure(started.opt_state) == jax.tree.structure(fresh.opt_state)


def test_init_from_reads_the_moving_average_where_the_source_kept_one(tmp_path):
  source_dir, source = _saved_run(tmp_path, _config(ema_decay=0.9))
  average = jax.tree.map(lambda x: x + 1.0, source.params)  # an average that differs from the trained weights
  checkpointer = checkpoints.Checkpointer(checkpoints.checkpoint_dir(source_dir), keep=2, every_steps=1)
  checkpointer.save(8, source.replace(ema_params=average), {}, force=True)
  checkpointer.close()
  started = init_from.start_from(_new_state(_config(ema_decay=0.5)), source_dir)
  expected = _by_path(average)
  for path, value in _by_path(started.params).items():
    np.testing.assert_array_equal(value, expected[path], err_msg=str(path))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(started.params), jax.tree.leaves(started.ema_params)))


def test_another_layer_shape_is_one_error_naming_the_layer_and_both_shapes(tmp_path):
  source_dir, _ = _saved_run(tmp_path, _config())
  wider = _new_state(_config(**{"model.width": 0.5}))  # the smoke net has width 0.125
  with pytest.raises(init_from.InitFromError) as raised:
    init_from.start_from(wider, source_dir)
  message = str(raised.value)
  assert message.startswith(f"config.init_from={source_dir}: conv1's bias is (2, 6) there and (2, 24) in this run")
  assert "\n" not in message


def test_a_source_without_checkpoints_is_one_error(tmp_path):
  with pytest.raises(init_from.InitFromError, match=r"config.init_from=.*holds no run to start from"):
    init_from.start_from(_new_state(_config()), str(tmp_path / "nothing"))


def _fine_tune(source: str, workdir: str, *flags: str) -> subprocess.CompletedProcess:
  """``main`` on mock data, the smoke recipe started from ``source`` with ``flags`` added."""
  command = [sys.executable, smoke_run.MAIN_ON_MOCK_DATA, f"--workdir={workdir}"]
  command += ["--config=experiments/fashion_mnist.py:smoke", f"--config.init_from={source}", *flags]
  return subprocess.run(command, cwd=smoke_run.REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_fine_tuning_from_the_command_line_starts_from_the_source_once_and_trains_only_the_head(tmp_path):
  source = smoke_run.train(tmp_path)
  workdir = str(tmp_path / "fine_tuned")
  result = _fine_tune(source, workdir, f"--config.trainable={HEAD}", "--config.seed=3")
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Starting from the weights of {source}" in result.stderr
  theirs = _by_path(trained_run.load(source).params)  # what init_from takes: the delivered (averaged) weights
  ours = _by_path(trained_run.load(workdir, average=False).params)
  for path, layer in _layers(trained_run.load(workdir).params).items():
    assert np.array_equal(theirs[path], ours[path]) == (layer not in HEAD.split("|")), path

  again = _fine_tune(source, workdir, f"--config.trainable={HEAD}", "--config.seed=3")  # resumes its own run
  assert again.returncode == 0 and "Starting from the weights" not in again.stderr, again.stderr[-3000:]

  refused = _fine_tune(source, str(tmp_path / "typo"), "--config.trainable=fc9")
  assert refused.returncode == 1
  assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == [
    refused.stderr.strip().splitlines()[-1]
  ]
  assert "config.trainable='fc9' matches no layer" in refused.stderr

"""train_and_evaluate end to end on mock data: every config's smoke variant, resume, summary.json."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from alexnet_jax.data import input_spec
from alexnet_jax.parallel import sharding
from alexnet_jax.train import loop, optimizers, steps, validation
from alexnet_jax.train import state as state_lib
from experiments import cifar10, fashion_mnist, imagenet2012

SUMMARY_KEYS = {"step", "eval_top1_error", "eval_top5_error", "eval_loss", "wall_seconds", "config_overrides", "config"}


@pytest.mark.slow
@pytest.mark.parametrize(
  "config_module", [fashion_mnist, cifar10, imagenet2012], ids=["fashion_mnist", "cifar10", "imagenet2012"]
)
def test_smoke_config_trains_evaluates_and_writes_its_summary(config_module, mock_data, tmp_path):
  config = config_module.get_config("smoke")
  overrides = {"log_every_steps": 2}
  summary = loop.train_and_evaluate(config, str(tmp_path), overrides=overrides)
  assert summary["step"] == config.num_train_steps
  num_eval = input_spec.build(config).num_eval  # after eval_max_examples
  assert summary["eval_count"] == num_eval  # each example once
  for key in ("eval_loss", "eval_top1_error", "eval_top5_error", "train_loss"):
    assert np.isfinite(summary[key]), key
  assert 0 <= summary["eval_top5_error"] <= summary["eval_top1_error"] <= 1
  assert ocp.CheckpointManager(str(tmp_path / "checkpoints")).latest_step() == config.num_train_steps

  with open(tmp_path / "summary.json") as f:
    assert json.load(f) == summary
  assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]  # written by rename
  assert SUMMARY_KEYS <= set(summary)
  assert summary["config_overrides"] == overrides
  assert summary["config"]["dataset"] == config.dataset
  assert summary["config"]["model"]["width"] == config.model.width
  assert [h["step"] for h in summary["eval_history"]] == [config.num_train_steps]
  assert summary["wall_seconds"] > 0


@pytest.mark.slow
def test_a_moving_average_run_evaluates_and_delivers_the_average(mock_data, tmp_path):
  """ema_decay > 0: the summary's eval_* are the average's, raw_* the trained weights'; the run's
  checkpoint holds both, and inference loads the average."""
  from alexnet_jax.inference import trained_run

  config = fashion_mnist.get_config("smoke")
  config.ema_decay, config.label_smoothing, config.input.eval_crops = 0.5, 0.1, "center_flip"
  summary = loop.train_and_evaluate(config, str(tmp_path))
  assert {"eval_top1_error", "eval_raw_top1_error", "eval_raw_loss"} <= set(summary)
  assert summary["eval_loss"] != summary["eval_raw_loss"]
  saved = _final_state(tmp_path, config.num_train_steps)
  loaded = trained_run.load(str(tmp_path))
  kernel = lambda params: np.asarray(params["fc8"]["kernel"]["value"])  # an nnx.Param as orbax stores it
  np.testing.assert_array_equal(np.asarray(loaded.params["fc8"]["kernel"]), kernel(saved["ema_params"]))
  assert not np.array_equal(kernel(saved["ema_params"]), kernel(saved["params"]))
  trained = trained_run.load(str(tmp_path), average=False)  # evaluate/predict/export --weights=trained
  assert loaded.averaged and not trained.averaged
  np.testing.assert_array_equal(np.asarray(trained.params["fc8"]["kernel"]), kernel(saved["params"]))


@pytest.mark.slow
def test_the_moving_average_update_matches_numpy():
  config = fashion_mnist.get_config("smoke")
  config.ema_decay = 0.9
  state, step, batch, _ = _step_on_a_random_batch(config, ema_decay=0.9)
  bias = lambda params: np.asarray(params["fc7"]["bias"], np.float64)
  initial = expected = bias(state.params)
  for t in range(4):
    state, _ = step(state, batch)
    decay = min(0.9, (1 + t) / (10 + t))  # the first updates forget the initial values quickly
    expected = decay * expected + (1 - decay) * bias(state.params)
  np.testing.assert_allclose(bias(state.ema_params), expected, rtol=1e-5, atol=1e-7)
  average = bias(state.ema_params)
  assert not np.allclose(average, initial) and not np.allclose(average, bias(state.params))


def _resume_config():
  """Everything a resume must carry: the paper's rule (velocity), plateau drops, dropout keys."""
  config = imagenet2012.get_config("smoke")  # paper_sgd, plateau schedule, ten-crop eval
  config.schedule.plateau_patience = 1
  config.eval_every_steps = 1
  config.num_train_steps = 6
  config.checkpoint_every_steps = 3
  config.keep_checkpoints = 5
  return config


class Preempted(Exception):
  pass


def _final_state(workdir, step):
  return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))


@pytest.mark.slow
def test_resume_continues_exactly(mock_data, tmp_path, monkeypatch):
  config = _resume_config()
  straight = loop.train_and_evaluate(config, str(tmp_path / "straight"))

  real_iterator = mock_data.train_batches
  start_steps = []

  def preempted_after_3(spec, *, start_step=0, **kwargs):
    start_steps.append(start_step)
    batches = real_iterator(spec, start_step=start_step, **kwargs)
    for _ in range(3 - start_step):
      yield next(batches)
    raise Preempted

  monkeypatch.setattr(mock_data, "train_batches", preempted_after_3)
  resumed_dir = str(tmp_path / "resumed")
  with pytest.raises(Preempted):
    loop.train_and_evaluate(config, resumed_dir)
  monkeypatch.setattr(
    mock_data, "train_batches", lambda *a, **k: (start_steps.append(k["start_step"]), real_iterator(*a, **k))[1]
  )
  resumed = loop.train_and_evaluate(config, resumed_dir)
  assert start_steps == [0, 3]

  want, got = _final_state(str(tmp_path / "straight"), 6), _final_state(resumed_dir, 6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), want, got)
  assert int(np.asarray(got["plateau"]["drops"])) >= 1  # the test crossed a learning-rate drop
  for key in ("eval_top1_error", "eval_loss", "train_loss"):
    assert resumed[key] == pytest.approx(straight[key]), key
  for got_eval, want_eval in zip(resumed["eval_history"], straight["eval_history"], strict=True):
    assert got_eval == pytest.approx(want_eval)

  # A finished run neither trains nor evaluates again; it returns its summary.
  start_steps.clear()
  again = loop.train_and_evaluate(config, resumed_dir)
  assert start_steps == [] and again == resumed


@pytest.mark.slow
def test_bad_config_is_rejected_before_training(mock_data, tmp_path):
  config = fashion_mnist.get_config("smoke")
  config.schedule.name = "exponential"
  with pytest.raises(validation.ConfigError, match=r"schedule\.name='exponential'.*plateau"):
    loop.train_and_evaluate(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


def test_classification_metrics_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(32, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 32).astype(np.int32)
  got = steps.classification_metrics(jax.nn.log_softmax(logits), labels)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ranks = (logits > logits[np.arange(32), labels][:, None]).sum(-1)  # classes scored higher
  np.testing.assert_allclose(got["loss"], -log_probs[np.arange(32), labels], rtol=1e-5)
  np.testing.assert_array_equal(got["top1_error"], ranks >= 1)
  np.testing.assert_array_equal(got["top5_error"], ranks >= 5)


def test_ten_crop_eval_averages_softmax_over_crops_and_honours_the_mask():
  config = imagenet2012.get_config("smoke")
  mesh = sharding.create_mesh(1)
  model_def, state = state_lib.create_train_state(config, mesh, optimizers.create_optimizer(config))
  rng = np.random.default_rng(0)
  size, crops, side, classes = config.batch_size, 10, config.input.crop_size, config.model.num_classes
  images = rng.normal(size=(size, crops, side, side, 3)).astype(np.float32)
  labels = rng.integers(0, classes, size).astype(np.int32)
  mask = (np.arange(size) < size - 3).astype(np.float32)  # the last three are padding
  batch = sharding.global_batch({"image": images, "label": labels, "mask": mask}, mesh)
  sums = jax.device_get(steps.jit_eval_step(model_def, mesh)(state.params, batch))

  forward = jax.jit(lambda params, x: model_def.eval_model(params)(x))
  logits = np.asarray(forward(state.params, images.reshape(size * crops, side, side, 3)), np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs = (probs / probs.sum(-1, keepdims=True)).reshape(size, crops, classes).mean(axis=1)
  real = mask == 1
  assert sums["count"] == real.sum()
  np.testing.assert_allclose(sums["loss"], -np.log(probs[real, labels[real]]).sum(), rtol=1e-4)
  assert sums["top1_error"] == (probs[real].argmax(-1) != labels[real]).sum()


def _step_on_a_random_batch(config, **step_options):
  """``config``'s train state at step 0, its jitted train step (``step_options`` added) on one CPU
  device, a fixed random batch of 16 and the learning-rate schedule."""
  mesh = sharding.create_mesh(1)
  tx = optimizers.create_optimizer(config)
  model_def, state = state_lib.create_train_state(config, mesh, tx)
  schedule = optimizers.create_schedule(config, 10)
  step = steps.jit_train_step(model_def=model_def, tx=tx, schedule=schedule, mesh=mesh, **step_options)
  rng = np.random.default_rng(0)
  side, channels = config.input.crop_size, config.model.in_channels
  images = rng.normal(size=(16, side, side, channels)).astype(np.float32)
  batch = sharding.global_batch({"image": images, "label": rng.integers(0, 10, 16).astype(np.int32)}, mesh)
  return state, step, batch, schedule


@pytest.mark.slow
def test_train_step_is_a_function_of_seed_and_step():
  state, step, batch, schedule = _step_on_a_random_batch(fashion_mnist.get_config("smoke"))
  leaves = lambda s: [np.asarray(x) for x in jax.tree.leaves(s.params)]
  copy = lambda s: jax.tree.map(jnp.copy, s)  # the step donates its input state
  first, metrics = step(copy(state), batch)
  again, _ = step(copy(state), batch)
  later, _ = step(copy(state).replace(step=state.step + 1), batch)  # another step, another mask
  assert all(np.array_equal(a, b) for a, b in zip(leaves(first), leaves(again)))
  assert not all(np.array_equal(a, b) for a, b in zip(leaves(first), leaves(later)))
  assert int(first.step) == 1 and float(metrics["learning_rate"]) == pytest.approx(float(schedule(0)))


def test_smoothed_loss_matches_numpy():
  rng = np.random.default_rng(0)
  logits, labels, smoothing = rng.normal(size=(6, 10)), rng.integers(0, 10, 6), 0.1
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  on_label = log_probs[np.arange(6), labels]
  expected = -((1 - smoothing) * on_label + smoothing / 10 * log_probs.sum(-1))
  got = steps.smoothed_loss(jnp.asarray(log_probs, jnp.float32), jnp.asarray(labels), smoothing)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.slow
def test_label_smoothing_changes_the_update_but_not_the_reported_loss():
  config = fashion_mnist.get_config("smoke")
  state, plain_step, batch, _ = _step_on_a_random_batch(config)
  _, smoothed_step, _, _ = _step_on_a_random_batch(config, label_smoothing=0.2)
  # Step 1, past the warm-up's zero learning rate; copies, as the step donates its input state.
  copy = lambda s: jax.tree.map(jnp.copy, s).replace(step=state.step + 1)
  plain, plain_metrics = plain_step(copy(state), batch)
  smoothed, smoothed_metrics = smoothed_step(copy(state), batch)
  assert float(smoothed_metrics["loss"]) == pytest.approx(float(plain_metrics["loss"]), rel=1e-6)
  fc8 = lambda s: np.asarray(s.params["fc8"]["bias"])
  assert not np.allclose(fc8(plain), fc8(smoothed))


def test_every_dataset_the_validator_allows_is_a_tfds_dataset_or_makes_its_own_store():
  import tensorflow_datasets as tfds

  from alexnet_jax.data import options, registry

  own = [name for name in options.DATASETS if registry.get(name).own_store is not None]
  assert own == ["image_folder"]
  for name in set(options.DATASETS) - set(own):
    assert tfds.builder_cls(name).name == name

"""The update rules against the paper's equations in numpy, and the learning-rate schedules."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from alexnet_jax.train import optimizers
from experiments import fashion_mnist

# Three steps at eps = 0.01, then the paper's drop to 0.001 for three more.
LEARNING_RATES = [0.01] * 3 + [0.001] * 3


def _config(name, momentum=0.9, weight_decay=5e-4):
  config = fashion_mnist.get_config()
  config.optimizer.name = name
  config.optimizer.learning_rate = LEARNING_RATES[0]
  config.optimizer.momentum = momentum
  config.optimizer.weight_decay = weight_decay
  return config


def _gradients(num_steps, shape=(3, 4), seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=shape).astype(np.float32) for _ in range(num_steps)]


def _run_optax(name, w0, grads):
  """Runs the configured optimizer the way the train step does: rate set before each update."""
  tx = optimizers.create_optimizer(_config(name))
  params = {"w": jnp.asarray(w0)}
  state = tx.init(params)
  trajectory = []
  for eps, g in zip(LEARNING_RATES, grads):
    state = optimizers.set_learning_rate(state, eps)
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append(np.asarray(params["w"]))
  return trajectory


def _paper_numpy(w0, grads, m=0.9, wd=5e-4, rates=LEARNING_RATES):
  """Krizhevsky et al. (2012) §5: v <- m v - wd eps w - eps g;  w <- w + v."""
  w, v, trajectory = w0.astype(np.float64), np.zeros_like(w0, np.float64), []
  for eps, g in zip(rates, grads):
    v = m * v - wd * eps * w - eps * g
    w = w + v
    trajectory.append(w)
  return trajectory


def _optax_sgd_numpy(w0, grads, m=0.9, wd=5e-4, rates=LEARNING_RATES):
  """The usual form: t <- m t + (g + wd w);  w <- w - eps t."""
  w, t, trajectory = w0.astype(np.float64), np.zeros_like(w0, np.float64), []
  for eps, g in zip(rates, grads):
    t = m * t + g + wd * w
    w = w - eps * t
    trajectory.append(w)
  return trajectory


def test_paper_sgd_matches_the_papers_equations_across_a_learning_rate_drop():
  w0 = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
  grads = _gradients(len(LEARNING_RATES))
  got = _run_optax("paper_sgd", w0, grads)
  for step, (g, want) in enumerate(zip(got, _paper_numpy(w0, grads))):
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7, err_msg=f"step {step}")


def test_sgd_matches_optax_form_and_differs_from_paper_after_the_drop():
  w0 = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
  grads = _gradients(len(LEARNING_RATES))
  sgd = _run_optax("sgd", w0, grads)
  paper = _run_optax("paper_sgd", w0, grads)
  for g, want in zip(sgd, _optax_sgd_numpy(w0, grads)):
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)
  # Same trajectory while eps is constant, different once it drops.
  for step in range(3):
    np.testing.assert_allclose(sgd[step], paper[step], rtol=1e-5, atol=1e-7)
  gap = np.abs(sgd[3] - paper[3]).max()
  assert gap > 1e-3, gap


def test_paper_sgd_rejects_missing_params():
  tx = optimizers.paper_sgd(optimizers.SgdOptions(0.01))
  params = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="parameters"):
    tx.update(params, tx.init(params))


def _schedule(name, total=100, warmup=0, **fields):
  config = fashion_mnist.get_config()
  config.optimizer.learning_rate = 0.1
  config.schedule.name = name
  config.schedule.warmup_steps = warmup
  for key, value in fields.items():
    config.schedule[key] = value
  return optimizers.create_schedule(config, total)


def test_schedules():
  constant = _schedule("constant")
  assert [float(constant(s)) for s in (0, 50, 99)] == pytest.approx([0.1] * 3)
  cosine = _schedule("cosine", warmup=10)
  assert float(cosine(0)) == pytest.approx(0.0)
  assert float(cosine(5)) == pytest.approx(0.05)
  assert float(cosine(10)) == pytest.approx(0.1)
  assert float(cosine(55)) == pytest.approx(0.05, abs=1e-6)
  assert float(cosine(100)) == pytest.approx(0.0, abs=1e-7)
  piecewise = _schedule("piecewise", boundaries=(0.5, 0.75), decay_factor=0.1)
  assert [float(piecewise(s)) for s in (49, 50, 74, 75)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
  warm_piecewise = _schedule("piecewise", warmup=10, boundaries=(0.5,), decay_factor=0.1)
  assert [float(warm_piecewise(s)) for s in (5, 49, 50)] == pytest.approx([0.05, 0.1, 0.01])
  plateau = _schedule("plateau")
  assert float(plateau(99)) == pytest.approx(0.1)


def test_plateau_divides_by_ten_after_patience_at_most_max_drops_times():
  state = optimizers.init_plateau()
  errors = [0.5, 0.4, 0.45, 0.41, 0.3, 0.31, 0.31, 0.31, 0.31]
  scales = []
  for error in errors:
    state = optimizers.update_plateau(state, error, patience=2, factor=0.1, max_drops=2)
    scales.append(float(state.lr_scale))
  # Two evaluations without a new best (0.45, 0.41) -> first drop; 0.3 is a new best;
  # (0.31, 0.31) -> second drop; max_drops=2 stops any further drop.
  assert scales == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
  assert int(state.drops) == 2
  assert float(state.best_error) == pytest.approx(0.3)


def test_plateau_update_is_traceable():
  step = jax.jit(lambda s, e: optimizers.update_plateau(s, e, patience=1, factor=0.1, max_drops=3))
  state = step(step(optimizers.init_plateau(), 0.5), 0.6)
  assert float(state.lr_scale) == pytest.approx(0.1)


@pytest.mark.parametrize("name,reference", [("paper_sgd", _paper_numpy), ("sgd", _optax_sgd_numpy)])
def test_decay_biases_false_decays_the_weights_only_in_both_rules(name, reference):
  """The authors' code (cuda-convnet2 ``wc``, Caffe ``decay_mult: 0``): no weight decay on biases."""
  rng = np.random.default_rng(2)
  params = {"fc6": {"kernel": rng.normal(size=(3, 4)), "bias": np.ones(4)}, "convs": {0: {"bias": np.ones(2)}}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params) for _ in LEARNING_RATES]
  for decay_biases in (True, False):
    config = _config(name)
    config.optimizer.decay_biases = decay_biases
    tx = optimizers.create_optimizer(config)
    state, got = tx.init(params), params
    for eps, g in zip(LEARNING_RATES, grads):
      updates, state = tx.update(g, optimizers.set_learning_rate(state, eps), got)
      got = optax.apply_updates(got, updates)
    for path in (("fc6", "kernel"), ("fc6", "bias"), ("convs", 0, "bias")):
      leaf = lambda tree: functools.reduce(lambda node, key: node[key], path, tree)  # noqa: E731
      decayed = decay_biases or path[-1] == "kernel"
      want = reference(np.asarray(leaf(params)), [np.asarray(leaf(g)) for g in grads], wd=5e-4 if decayed else 0.0)
      np.testing.assert_allclose(leaf(got), want[-1], rtol=1e-5, atol=1e-7, err_msg=f"{path} {decay_biases}")


def test_is_decayed_marks_every_kernel_and_no_bias_of_alexnet():
  from alexnet_jax.parallel import sharding
  from alexnet_jax.train import state as train_state

  config = fashion_mnist.get_config("smoke")
  _, state = train_state.create_train_state(config, sharding.create_mesh(1), optimizers.create_optimizer(config))
  marks = {
    jax.tree_util.keystr(path): mark
    for path, mark in jax.tree_util.tree_leaves_with_path(optimizers.is_decayed(state.params))
  }
  assert len(marks) == 16
  assert all(mark == ("kernel" in path) for path, mark in marks.items()), marks


def _bias_tree(seed=3):
  """A tiny params tree with a kernel and a bias per layer, and six steps of random gradients."""
  rng = np.random.default_rng(seed)
  params = {"conv": {"kernel": rng.normal(size=(2, 3)), "bias": np.ones(3)}, "fc": {"kernel": rng.normal(size=(3, 2))}}
  params["fc"]["bias"] = np.full(2, 0.1)
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params) for _ in LEARNING_RATES]
  return params, grads


@pytest.mark.parametrize("name", ["paper_sgd", "sgd"])
def test_bias_lr_multiplier_scales_the_bias_steps_in_both_rules(name):
  """Caffe's lr_mult 2 on biases: each rule's numpy form with eps * 2 for the biases, eps for the weights."""
  params, grads = _bias_tree()
  config = _config(name)
  config.optimizer.bias_lr_multiplier = 2.0
  config.optimizer.decay_biases = False
  tx = optimizers.create_optimizer(config)
  update = jax.jit(tx.update)  # traced, as in the train step: the multiplier must stay a Python number
  state, got = tx.init(params), params
  assert set(state.hyperparams) == {"learning_rate", "momentum", "weight_decay"}  # what checkpoints hold
  for eps, g in zip(LEARNING_RATES, grads):
    updates, state = update(g, optimizers.set_learning_rate(state, eps), got)
    got = optax.apply_updates(got, updates)
  reference = {"paper_sgd": _paper_numpy, "sgd": _optax_sgd_numpy}[name]
  for layer in params:
    for leaf, rate, wd in (("kernel", 1.0, 5e-4), ("bias", 2.0, 0.0)):
      w0, gs = np.asarray(params[layer][leaf]), [np.asarray(g[layer][leaf]) for g in grads]
      want = reference(w0, gs, wd=wd, rates=[rate * eps for eps in LEARNING_RATES])
      np.testing.assert_allclose(got[layer][leaf], want[-1], rtol=1e-5, atol=1e-7, err_msg=f"{layer} {leaf}")


def test_a_bias_lr_multiplier_of_one_leaves_the_optimizer_state_as_before():
  """Runs saved before the option existed restore: the default adds no stage to the optax chain."""
  params, _ = _bias_tree()
  plain = optimizers.sgd(optimizers.SgdOptions(0.01))
  assert jax.tree.structure(
    optimizers.sgd(optimizers.SgdOptions(0.01, bias_lr_multiplier=1.0)).init(params)
  ) == jax.tree.structure(plain.init(params))
  assert jax.tree.structure(
    optimizers.sgd(optimizers.SgdOptions(0.01, bias_lr_multiplier=2.0)).init(params)
  ) != jax.tree.structure(plain.init(params))


def test_step_schedule_multiplies_every_step_every_steps_at_most_max_drops_times():
  """Caffe's lr_policy "step": base * gamma ** floor(iter / stepsize), here capped at two drops."""
  step = _schedule("step", step_every=3, decay_factor=0.1, max_drops=2)
  want = [0.1 * 0.1 ** min(s // 3, 2) for s in range(12)]
  assert [float(step(s)) for s in range(12)] == pytest.approx(want)
  warm = _schedule("step", warmup=2, step_every=3, decay_factor=0.1, max_drops=2)
  assert [float(warm(s)) for s in range(7)] == pytest.approx([0.0, 0.05, 0.1, 0.01, 0.01, 0.01, 0.001])


def _drive_plateau(errors, **rule):
  """Feeds ``errors`` to the plateau rule one evaluation at a time (every 10 steps, 100 per epoch),
  through its one call as the loop makes it; returns the drops it records and the rates after each."""
  schedule = optax.constant_schedule(0.01)
  plateau_rule = optimizers.PlateauRule(schedule, **rule)
  state, drops, rates = optimizers.init_plateau(), [], []
  for index, error in enumerate(errors):
    step = 10 * (index + 1)
    state, drop = plateau_rule.after_eval(state, error, step=step, epoch=step / 100)
    drops += [drop] if drop else []
    rates.append(float(optimizers.learning_rate_at(schedule, state, step)))
  return drops, rates


def test_the_plateau_rule_is_update_plateau_then_plateau_drop_and_off_for_other_schedules():
  """after_eval (jitted) gives the record and the drop the plain functions give; the config picks
  the rule's numbers; a rule of another schedule leaves the record as it is and drops nothing."""
  config = _config("paper_sgd")
  config.schedule.name, config.schedule.plateau_patience, config.schedule.max_drops = "plateau", 1, 2
  config.schedule.decay_factor, config.schedule.min_delta = 0.1, 0.01
  schedule = optax.constant_schedule(0.01)
  rule = optimizers.PlateauRule.from_config(config, schedule)
  assert (rule.patience, rule.factor, rule.max_drops, rule.min_delta, rule.enabled) == (1, 0.1, 2, 0.01, True)
  numbers = dict(patience=1, factor=0.1, max_drops=2, min_delta=0.01)
  state = want = optimizers.init_plateau()
  for step, error in [(5, 0.5), (10, 0.495), (15, 0.4), (20, 0.41)]:
    before, want = want, optimizers.update_plateau(want, error, **numbers)
    want_drop = optimizers.plateau_drop(before, want, schedule=schedule, step=step, epoch=step / 10, eval_error=error)
    state, drop = rule.after_eval(state, error, step=step, epoch=step / 10)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state), jax.device_get(want))
    assert drop == want_drop
  assert int(state.drops) == 2
  config.schedule.name = "cosine"
  off = optimizers.PlateauRule.from_config(config, schedule)
  assert off.after_eval(state, 0.9, step=30, epoch=3.0) == (state, None)


def test_plateau_drops_are_recorded_with_step_epoch_error_and_rates():
  errors = [0.5, 0.4, 0.45, 0.41, 0.3, 0.31, 0.31, 0.31, 0.31]
  drops, rates = _drive_plateau(errors, patience=2, factor=0.1, max_drops=2)
  assert rates == pytest.approx([0.01] * 3 + [0.001] * 3 + [0.0001] * 3)
  assert [d["step"] for d in drops] == [40, 70] and [d["drop"] for d in drops] == [1, 2]
  first = drops[0]
  assert first["epoch"] == pytest.approx(0.4)
  assert (first["eval_top1_error"], first["best_top1_error"]) == pytest.approx((0.41, 0.4))
  assert (first["old_learning_rate"], first["new_learning_rate"]) == pytest.approx((0.01, 0.001))
  assert json.loads(json.dumps(drops)) == drops  # plain JSON for summary.json and the checkpoint record


def test_plateau_min_delta_ignores_small_gains_and_lets_a_slow_creep_count():
  """0.4 -> 0.3996 -> 0.3992 are gains of 0.04 points each: below min_delta 0.001 they are plateau
  evaluations (a drop at the second); 0.3988 is 0.12 points below the last improvement: it counts."""
  creep = [0.4, 0.3996, 0.3992, 0.3988, 0.3984, 0.398]
  strict, _ = _drive_plateau(creep, patience=2, factor=0.1, max_drops=3)
  assert strict == []  # min_delta 0: every lower error is an improvement
  drops, _ = _drive_plateau(creep, patience=2, factor=0.1, max_drops=3, min_delta=0.001)
  assert [d["step"] for d in drops] == [30, 60]
  # 0.3988 (step 40) improved on 0.4 by 0.0012: patience restarted, so the next drop waits two evaluations.


def test_plateau_never_drops_more_than_max_drops():
  drops, rates = _drive_plateau([0.5] + [0.6] * 9, patience=1, factor=0.1, max_drops=3)
  assert [d["step"] for d in drops] == [20, 30, 40] and rates[-1] == pytest.approx(1e-5)
  no_drops, _ = _drive_plateau([0.5] + [0.6] * 4, patience=1, factor=0.1, max_drops=0)
  assert no_drops == []

"""The three ImageNet recipes (the paper, cuda-convnet2, Caffe's bvlc_alexnet) as each reference's rule.

Each variant's optimizer, schedule and LRN are run here and compared with numpy written from the
reference's own description (the values as its files write them, in its own convention), so a
wrong conversion -- alpha not divided by the window, a bias rate or decay on the wrong leaves, a
step at the wrong place -- fails, not only a retyped number.
"""

import functools
import os
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from support import references

from alexnet_jax.config import recipes
from alexnet_jax.data import augment
from alexnet_jax.model import layers
from alexnet_jax.train import optimizers, validation
from alexnet_jax.train.options import OPTIMIZERS
from experiments import imagenet2012

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("paper", "cuda_convnet2", "caffe")


def _config(variant, *more):
  return imagenet2012.get_config(":".join(name for name in (variant, *more) if name != "paper") or None)


@pytest.mark.parametrize("smoke", [False, True], ids=["full", "smoke"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_recipe_validates_alone_and_with_smoke(variant, smoke):
  validation.validate(_config(variant, *(["smoke"] if smoke else [])), device_count=1)


def test_a_config_takes_one_recipe_and_rejects_unknown_variants():
  with pytest.raises(ValueError, match="name at most one of"):
    imagenet2012.get_config("caffe:cuda_convnet2")
  with pytest.raises(ValueError, match=r"unknown config variant 'huge'.*one recipe of \['caffe', 'cuda_convnet2'\]"):
    imagenet2012.get_config("caffe:huge")


# Each reference's (weights' rate, biases' rate) at update t of T, written from its own files.
def _paper_rates(t, total):
  return 0.01, 0.01  # §5: eps 0.01 for every parameter until the validation error stops improving


def _cuda_convnet2_rates(t, total):
  # layer-params-imagenet-2gpu-model.cfg: epsW=dexp[base=0.02;tgtFactor=250;numSteps=4],
  # epsB=dexp[base=0.04;tgtFactor=25;numSteps=2]; training progress t / T.
  return references.cuda_convnet2_dexp(0.02, 250, 4, t / total), references.cuda_convnet2_dexp(0.04, 25, 2, t / total)


def _caffe_rates(t, total, stepsize=100_000):
  # solver.prototxt: base_lr 0.01, lr_policy "step", gamma 0.1, stepsize 100000; every bias lr_mult 2.
  weights = references.caffe_step(0.01, 0.1, stepsize, t)
  return weights, 2 * weights


REFERENCES = {"paper": _paper_rates, "cuda_convnet2": _cuda_convnet2_rates, "caffe": _caffe_rates}


def _numpy_update(w, grads, rates, *, weight_decay, momentum=0.9):
  """The rate inside the momentum trace, as the paper, cuda-convnet2 (weights.cu) and Caffe's SGD all write it:
  v <- m v - eps (wd w + g); w <- w + v."""
  w, v = w.astype(np.float64), np.zeros_like(w, np.float64)
  for eps, g in zip(rates, grads):
    v = momentum * v - eps * (weight_decay * w + g)
    w = w + v
  return w


def _train_like_the_train_step(config, params, grads):
  """The configured optimizer run as the train step runs it: both rates of each step set before its update."""
  tx, schedule = optimizers.create_optimizer(config), optimizers.create_schedule(config, len(grads))
  state = tx.init(params)
  for step, g in enumerate(grads):
    rates = optimizers.rates_of(schedule, optimizers.init_plateau(), step)
    updates, state = tx.update(g, optimizers.set_learning_rate(state, *rates), params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_recipes_optimizer_and_schedule_follow_its_reference(variant):
  """Weights decayed at the weights' rate, biases undecayed at the biases' rate, each group's schedule."""
  config, total = _config(variant), 8
  stepsize = 3 if variant == "caffe" else None  # 100,000 in the recipe: the same rule on a short run
  if stepsize:
    config.schedule.step_every = stepsize
  rate_of = functools.partial(REFERENCES[variant], stepsize=stepsize) if stepsize else REFERENCES[variant]
  rng = np.random.default_rng(0)
  params = {
    "conv2": {"kernel": rng.normal(0, 0.01, (3, 3, 2, 4)), "bias": np.ones(4)},
    "fc8": {"kernel": rng.normal(0, 0.01, (5, 3)), "bias": np.zeros(3)},
  }
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params) for _ in range(total)]
  got = _train_like_the_train_step(config, params, grads)
  weight_rates, bias_rates = zip(*(rate_of(t, total) for t in range(total)))
  assert len(set(np.round(weight_rates, 10))) == {"paper": 1, "cuda_convnet2": 4, "caffe": 3}[variant]
  for layer in params:
    leaf_grads = lambda leaf: [np.asarray(g[layer][leaf]) for g in grads]  # noqa: E731
    want_kernel = _numpy_update(
      np.asarray(params[layer]["kernel"]), leaf_grads("kernel"), weight_rates, weight_decay=5e-4
    )
    want_bias = _numpy_update(np.asarray(params[layer]["bias"]), leaf_grads("bias"), bias_rates, weight_decay=0.0)
    np.testing.assert_allclose(got[layer]["kernel"], want_kernel, rtol=1e-5, atol=1e-8, err_msg=layer)
    np.testing.assert_allclose(got[layer]["bias"], want_bias, rtol=1e-5, atol=1e-8, err_msg=layer)


@pytest.mark.parametrize("total", [1000, 1001, 450_000])
def test_cuda_convnet2s_rates_are_lr_cus_at_every_quarter(total):
  """rates_at against lr.cu's rule on each side of every quarter, for both groups; the biases' second half
  is 25x below their first, so a bias rate tied to the weights' (a fixed multiple) fails here."""
  config = _config("cuda_convnet2")
  quarters = [round(q * total / 4) for q in range(5)]
  steps = sorted({min(max(s + d, 0), total - 1) for s in quarters for d in (-1, 0, 1)})
  for step in steps:
    np.testing.assert_allclose(
      optimizers.rates_at(config, total, step), _cuda_convnet2_rates(step, total), rtol=1e-6, err_msg=str(step)
    )


@pytest.mark.parametrize("step", [0, 99_999, 100_000, 399_999, 400_000, 449_999, 450_000])
def test_caffes_rates_are_its_step_policy_at_its_iterations(step):
  """rates_at of the 450,000-iteration run against solver.prototxt's step policy, biases at lr_mult 2."""
  config = _config("caffe")
  np.testing.assert_allclose(optimizers.rates_at(config, 450_000, step), _caffe_rates(step, 450_000), rtol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rates_at_are_the_rates_the_optimizer_applies_to_a_kernel_and_a_bias(variant):
  """A first update from zero weights and velocity moves each leaf by minus its rate times the gradient (both
  rules): what the optimizer did at each quarter of training, divided by the gradient, is rates_at's pair."""
  total, rng = 400, np.random.default_rng(3)
  for name in OPTIMIZERS:
    config = _config(variant)
    config.optimizer.name = name
    schedule, tx = optimizers.create_schedule(config, total), optimizers.create_optimizer(config)
    params = {"fc": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}
    grads = jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.5, 1.5, x.shape), jnp.float32), params)
    for step in (0, 100, 101, 200, 201, 300, 301, 399):
      rates = optimizers.rates_of(schedule, optimizers.init_plateau(), step)
      updates, _ = tx.update(grads, optimizers.set_learning_rate(tx.init(params), *rates), params)
      applied = [float(np.mean(-updates["fc"][leaf] / grads["fc"][leaf])) for leaf in ("kernel", "bias")]
      np.testing.assert_allclose(applied, optimizers.rates_at(config, total, step), rtol=1e-5, err_msg=f"{name} {step}")


# Each reference's LRN as its files write it: (size, k, alpha as written, beta) and its convention.
LRN_SOURCES = {
  # The paper §3.3: b = a / (k + alpha * sum a^2)^beta with k=2, n=5, alpha=1e-4, beta=0.75.
  "paper": dict(size=5, k=2.0, alpha=1e-4, beta=0.75, divide_by_size=False),
  # layer-params-imagenet-2gpu-model.cfg [rnorm1a]: scale=0.0001 pow=0.75 minDiv=2; layer.py divides scale by size.
  "cuda_convnet2": dict(size=5, k=2.0, alpha=1e-4, beta=0.75, divide_by_size=True),
  # train_val.prototxt norm1: local_size 5 alpha 0.0001 beta 0.75, k unset (1); Caffe divides alpha by local_size.
  "caffe": dict(size=5, k=1.0, alpha=1e-4, beta=0.75, divide_by_size=True),
}


def _reference_lrn(a, *, size, k, alpha, beta, divide_by_size):
  """Across channels, the window clipped at the first and last channel, in the reference's convention."""
  squares = np.pad(a.astype(np.float64) ** 2, ((0, 0), (0, 0), (0, 0), (size // 2, size // 2)))
  sums = sum(squares[..., offset : offset + a.shape[-1]] for offset in range(size))
  return a / (k + (alpha / size if divide_by_size else alpha) * sums) ** beta


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_recipes_lrn_is_its_references_normalisation(variant):
  model = _config(variant).model
  # Activations of ReLU-output size (up to ~100): alpha * sum a^2 is near 1, where a factor 5 in alpha shows.
  a = np.abs(np.random.default_rng(1).normal(0, 40, (2, 3, 3, 12))).astype(np.float32)
  got = layers.local_response_norm(
    a, size=model.lrn_size, k=model.lrn_k, alpha=model.lrn_alpha, beta=model.lrn_beta, region=model.lrn_region
  )
  want = _reference_lrn(a, **LRN_SOURCES[variant])
  np.testing.assert_allclose(got, want, rtol=1e-5)
  others = [v for v in VARIANTS if LRN_SOURCES[v] != LRN_SOURCES[variant]]
  for other in others:  # the test can tell the conventions apart on these activations
    assert not np.allclose(got, _reference_lrn(a, **LRN_SOURCES[other]), rtol=1e-3), other


def _cuda_convnet2_mean(mean, top, left, flip, size):
  # convdata.py ImageDataProvider: data_mean_crop, the central inner_size crop (border_size on each
  # side), is subtracted from the cropped and mirrored data as it is.
  border = (mean.shape[0] - size) // 2
  return mean[border : border + size, border : border + size]


def _caffe_mean(mean, top, left, flip, size):
  # data_transformer.cpp Transform: the pixel read at (h_off + h, w_off + w), written mirrored where
  # do_mirror, loses mean[h_off + h, w_off + w]: the mean crop at the view's offset, mirrored with it.
  crop = mean[top : top + size, left : left + size]
  return crop[:, ::-1] if flip else crop


# The crop of the mean image each reference's views lose (the paper does not say; it keeps Caffe's).
MEAN_SOURCES = {"paper": _caffe_mean, "cuda_convnet2": _cuda_convnet2_mean, "caffe": _caffe_mean}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_recipes_views_lose_its_references_crop_of_the_mean_image(variant):
  """The ten crops of 6x6 squares cut to 4x4 with the recipe's mean rule, against the reference's
  rule: the top-left corner (view 0) and its mirror image (view 5) tell the two rules apart."""
  rng = np.random.default_rng(4)
  mean = rng.uniform(0, 1, (6, 6, 3)).astype(np.float32)
  squares = rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
  spec = types.SimpleNamespace(
    mean=mean, mean_crop=_config(variant).input.mean_crop, crop_size=4, eval_crops="ten_crop", std=1.0, model_channels=3
  )
  views = np.asarray(augment.eval_views(squares, spec))
  corner = squares[:, :4, :4] / 255
  for index, flip in ((0, False), (5, True)):
    view = corner[:, :, ::-1] if flip else corner
    np.testing.assert_allclose(views[:, index], view - MEAN_SOURCES[variant](mean, 0, 0, flip, 4), atol=1e-6)


def _doc_table() -> str:
  """The table between the markers in docs/paper_and_references.md."""
  with open(os.path.join(REPO, "docs", "paper_and_references.md")) as f:
    text = f.read()
  match = re.search(r"<!-- recipes table: begin -->\n(.*?)\n<!-- recipes table: end -->", text, re.DOTALL)
  assert match, "docs/paper_and_references.md has lost its recipes table markers"
  return match.group(1)


def test_the_docs_table_is_the_commands_output():
  """docs/paper_and_references.md shows what the configs hold: regenerate it with
  ``python -m alexnet_jax.config.recipes`` after changing a recipe."""
  assert _doc_table() == recipes.markdown_table()


def test_the_table_lists_exactly_the_fields_that_differ():
  configs = {"a": {"x": 1, "y": 0.1, "z": "s"}, "b": {"x": 1, "y": 0.2, "z": "s"}, "c": {"x": 1, "y": 0.1}}
  assert recipes.differences(configs) == [("y", [0.1, 0.2, 0.1]), ("z", ["s", "s", recipes.ABSENT])]
  table = recipes.markdown_table(configs).splitlines()
  assert table[0] == "| field | a | b | c |"
  assert table[2:] == ["| `y` | 0.1 | 0.2 | 0.1 |", f'| `z` | "s" | "s" | {recipes.ABSENT} |']


@pytest.mark.parametrize(
  "field,value,message",
  [
    (
      "optimizer.bias_lr_multiplier",
      0.0,
      "config.optimizer.bias_lr_multiplier=0.0 is not allowed: expected a number in (0.0",
    ),
    ("input.train_scale", -1.0, "config.input.train_scale=-1.0 is not allowed: expected a number in (0.0"),
    (
      "input.mean_crop",
      "centre",
      "config.input.mean_crop='centre' is not allowed: expected one of ('at_view', 'center')",
    ),
    ("schedule.min_delta", 2.0, "config.schedule.min_delta=2.0 is not allowed: expected a number in [0.0, 1.0]"),
    ("schedule.step_every", -1, "config.schedule.step_every=-1 is not allowed: expected an integer >= 0"),
    ("schedule.name", "step", "config.schedule.step_every=0 must be >= 1 with config.schedule.name='step'"),
  ],
)
def test_the_recipe_options_fail_with_the_fields_name(field, value, message):
  config = imagenet2012.get_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(validation.ConfigError) as error:
    validation.validate(config, device_count=1)
  assert message in str(error.value)

"""AlexNet: parity with an independent PyTorch model, the paper's size facts, dropout, init, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alexnet_jax.model import alexnet
from alexnet_jax.yardsticks import torch_alexnet

FEATURE_MAPS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
# A small network for everything that does not need the paper's full size.
SMALL = dict(width=0.25, input_size=67)


def _copy_weights(torch, model, reference):
  """Loads the NNX parameters into the PyTorch reference."""
  state = torch_alexnet.state_dict_from_jax(nnx.state(model, nnx.Param))
  reference.load_state_dict({k: torch.tensor(v) for k, v in state.items()})


def _images(shape=(2, 227, 227, 3), seed=0):
  """Mean-subtracted pixel-scale images: large enough that LRN is far from a constant factor."""
  return (50.0 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _random_params(towers, seed=0, **options):
  """He-scaled random kernels and random biases for every parameter, drawn with numpy.

  Random biases (not the init's constants) make a mis-ordered bias copy visible; He scaling
  keeps the signal alive through all eight layers so every layer shapes the logits. numpy
  draws the 61M values in about a second, far faster than running the model's own init.
  """
  abstract = nnx.eval_shape(lambda: alexnet.AlexNet(10, towers=towers, rngs=nnx.Rngs(0), **options))
  rng = np.random.default_rng(seed)

  def draw(leaf):
    if len(leaf.shape) == 2:  # bias (T, out/T)
      return jnp.asarray(rng.standard_normal(leaf.shape, np.float32))
    fan_in = int(np.prod(leaf.shape[1:-1]))
    return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.sqrt(2.0 / fan_in))

  return jax.tree.map(draw, nnx.state(abstract, nnx.Param))


def _model_with(params, **options):
  """An AlexNet with the given parameters, built without running its own initialiser.

  Only the parameters are real; eval mode never touches the (abstract) dropout RNG state.
  """
  model = nnx.eval_shape(lambda: alexnet.AlexNet(10, rngs=nnx.Rngs(0), **options))
  nnx.update(model, params)
  model.eval()
  return model


@pytest.fixture(scope="module")
def full_size_params():
  """Random parameters for the full 227x227 network, one set per tower count, drawn once."""
  return {towers: _random_params(towers, seed=towers) for towers in (1, 2)}


@pytest.mark.parametrize(
  "options",
  [
    dict(towers=2),
    dict(towers=1),
    dict(towers=2, lrn_position="before_relu"),
    dict(towers=2, lrn_per_tower=False),
    dict(towers=2, lrn_position="before_relu,after_relu", cnorm2=True),
  ],
  ids=["two_towers", "one_tower", "lrn_before_relu", "lrn_across_towers", "cuda_convnet2_norms"],
)
def test_logits_match_pytorch(options, full_size_params):
  torch = pytest.importorskip("torch")
  model = _model_with(full_size_params[options["towers"]], **options)
  reference = torch_alexnet.TorchAlexNet(10, **options)
  _copy_weights(torch, model, reference)
  reference.eval()
  images = _images()
  with torch.no_grad():
    expected = reference(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
  got = np.asarray(model(jnp.asarray(images)))
  assert got.shape == expected.shape == (2, 10)
  assert np.abs(expected).max() > 1.0  # a live signal, not a collapsed network
  # Elementwise within 1e-4 of the logits' scale.
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
  # PyTorch computes its own feature maps; they must agree with the model's size table.
  assert reference.sizes == {k: alexnet.feature_map_sizes(227)[k] for k in FEATURE_MAPS}


# ----------------------------------------------------------------------------------------------
# Variants that must actually change the network (otherwise the parity above proves less).


@pytest.fixture(scope="module")
def small_params():
  return _random_params(2, seed=7, **SMALL)


@pytest.fixture(scope="module")
def small_images():
  return jnp.asarray(_images((4, 67, 67, 3), seed=3))


def _assert_differ(a, b):
  a, b = np.asarray(a), np.asarray(b)
  assert np.abs(a - b).max() > 1e-3 * np.abs(a).max()


def test_lrn_per_tower_differs_from_lrn_across_towers(small_params, small_images):
  """The size-5 window at the last channels of tower 0 crosses into tower 1 unless per tower."""
  per_tower = _model_with(small_params, **SMALL)(small_images)
  across = _model_with(small_params, lrn_per_tower=False, **SMALL)(small_images)
  _assert_differ(per_tower, across)


def test_lrn_position_changes_the_output(small_params, small_images):
  after = _model_with(small_params, **SMALL)(small_images)
  before = _model_with(small_params, lrn_position="before_relu", **SMALL)(small_images)
  _assert_differ(after, before)


def test_lrn_off_changes_the_output(small_params, small_images):
  with_lrn = _model_with(small_params, **SMALL)(small_images)
  without = _model_with(small_params, lrn=False, **SMALL)(small_images)
  _assert_differ(with_lrn, without)


# ----------------------------------------------------------------------------------------------
# The paper's size facts.


@pytest.mark.parametrize("towers,expected", [(2, 60_965_224), (1, 62_378_344)])
def test_parameter_count(towers, expected):
  model = nnx.eval_shape(lambda: alexnet.AlexNet(1000, towers=towers, rngs=nnx.Rngs(0)))
  assert alexnet.count_params(model) == expected


def test_feature_map_sizes_227():
  sizes = alexnet.feature_map_sizes(227)
  assert [sizes[k] for k in FEATURE_MAPS] == [55, 27, 27, 13, 13, 13, 13, 6]


def test_paper_layer_shapes():
  model = nnx.eval_shape(lambda: alexnet.AlexNet(1000, rngs=nnx.Rngs(0)))
  kernels = [tuple(conv.kernel.shape) for conv in model.convs]
  assert kernels == [
    (2, 11, 11, 3, 48),
    (2, 5, 5, 48, 128),
    (2, 3, 3, 256, 192),
    (2, 3, 3, 192, 192),
    (2, 3, 3, 192, 128),
  ]
  assert model.fc6.kernel.shape == (2, 6 * 6 * 256, 2048)
  assert model.fc7.kernel.shape == (2, 4096, 2048)
  assert model.fc8.kernel.shape == (1, 4096, 1000)


def test_width_multiplier_and_small_input_shapes():
  model = nnx.eval_shape(lambda: alexnet.AlexNet(7, width=0.5, input_size=67, rngs=nnx.Rngs(0)))
  sizes = alexnet.feature_map_sizes(67)
  assert [sizes[k] for k in FEATURE_MAPS] == [15, 7, 7, 3, 3, 3, 3, 1]
  assert [conv.kernel.shape[-1] * 2 for conv in model.convs] == [48, 128, 192, 192, 128]
  assert model.fc6.kernel.shape == (2, 1 * 1 * 128, 1024)
  assert model.fc8.kernel.shape == (1, 2048, 7)
  model.eval()
  logits = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((3, 67, 67, 3), jnp.float32))
  assert logits.shape == (3, 7) and logits.dtype == jnp.float32


def test_non_overlapping_pool_option():
  sizes = alexnet.feature_map_sizes(227, pool_window=2, pool_stride=2)
  assert [sizes[k] for k in FEATURE_MAPS] == [55, 27, 27, 13, 13, 13, 13, 6]
  sizes = alexnet.feature_map_sizes(224, pool_window=2, pool_stride=2)
  assert [sizes[k] for k in FEATURE_MAPS] == [54, 27, 27, 13, 13, 13, 13, 6]


# ----------------------------------------------------------------------------------------------
# Dropout: on in train mode, off in eval mode.


def _mask_probe(rate):
  """A small AlexNet whose fc6 outputs exactly 1, and a list that collects fc7's inputs.

  fc7's input is relu(fc6) after dropout, so with fc6 == 1 it is the dropout mask itself:
  0 where a unit was dropped, 1 / (1 - rate) where it was kept.
  """
  model = alexnet.AlexNet(10, dropout_rate=rate, rngs=nnx.Rngs(params=0, dropout=1), **SMALL)
  model.fc6.kernel[...] = jnp.zeros_like(model.fc6.kernel[...])
  model.fc6.bias[...] = jnp.ones_like(model.fc6.bias[...])
  seen, fc7 = [], model.fc7

  class Recorder(nnx.Module):
    def __init__(self):
      self.layer = fc7

    def __call__(self, x):
      seen.append(np.asarray(x))
      return self.layer(x)

  model.fc7 = Recorder()
  return model, seen


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_dropout_in_train_mode(rate, small_images):
  model, seen = _mask_probe(rate)
  model.train()
  first, second = model(small_images), model(small_images)
  assert not np.allclose(first, second)
  for mask in seen:
    assert mask.shape == (4, 1024)
    assert abs(np.mean(mask == 0) - rate) < 0.04
    np.testing.assert_allclose(mask[mask != 0], 1 / (1 - rate), rtol=1e-6)
    assert not np.array_equal(mask[:, :512], mask[:, 512:])  # each tower has its own slice
  assert not np.array_equal(seen[0], seen[1])


def test_dropout_off_in_eval_mode(small_images):
  model, seen = _mask_probe(0.5)
  model.eval()
  np.testing.assert_array_equal(model(small_images), model(small_images))
  np.testing.assert_array_equal(seen[0], np.ones((4, 1024)))


# ----------------------------------------------------------------------------------------------
# Initialisation schemes (on the small network: the statistics do not depend on the width).

BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")
# Fan-in of every layer at width 0.25 and 67x67 input: conv2/4/5 read only their own tower's
# half of the previous layer's maps; fc6 reads pool5's 1 x 1 x 64 maps.
SMALL_FAN_IN = dict(
  conv1=3 * 11 * 11, conv2=12 * 5 * 5, conv3=64 * 3 * 3, conv4=48 * 3 * 3, conv5=48 * 3 * 3, fc6=64, fc7=1024, fc8=1024
)


def _layers(model):
  return dict(zip(CONV_NAMES, model.convs), fc6=model.fc6, fc7=model.fc7, fc8=model.fc8)


def _assert_init(model, weight_std, bias):
  for name, layer in _layers(model).items():
    kernel = np.asarray(layer.kernel[...])
    assert abs(kernel.mean()) < 0.05 * weight_std[name], name
    assert kernel.std() == pytest.approx(weight_std[name], rel=0.04), name
    np.testing.assert_array_equal(layer.bias[...], np.float32(bias[name]), err_msg=name)


def test_paper_init():
  model = alexnet.AlexNet(10, init="paper", rngs=nnx.Rngs(0), **SMALL)
  _assert_init(
    model,
    weight_std=dict.fromkeys(SMALL_FAN_IN, 0.01),
    bias={name: 1.0 if name in BIAS_ONE else 0.0 for name in SMALL_FAN_IN},
  )
  # Each tower draws its own weights (a shared key would make the towers clones).
  kernel = np.asarray(model.convs[0].kernel[...])
  assert not np.allclose(kernel[0], kernel[1])


def test_caffe_init():
  model = alexnet.AlexNet(10, init="caffe", rngs=nnx.Rngs(0), **SMALL)
  _assert_init(
    model,
    weight_std={name: 0.005 if name in ("fc6", "fc7") else 0.01 for name in SMALL_FAN_IN},
    bias={name: 0.1 if name in BIAS_ONE else 0.0 for name in SMALL_FAN_IN},
  )


def test_he_init():
  model = alexnet.AlexNet(10, init="he", rngs=nnx.Rngs(0), **SMALL)
  _assert_init(
    model,
    weight_std={name: (2.0 / fan_in) ** 0.5 for name, fan_in in SMALL_FAN_IN.items()},
    bias=dict.fromkeys(SMALL_FAN_IN, 0.0),
  )


def test_a_one_channel_conv1_on_grey_images_is_the_rgb_net_on_their_replicas(small_params):
  """conv1 over a grey image replicated to RGB sums its three kernel slices: a one-channel conv1
  holding that sum is the same function (with a third of conv1's work)."""
  grey = jnp.asarray(_images((3, 67, 67, 1), seed=5))
  one_channel = jax.tree.map(lambda x: x, small_params)
  one_channel["convs"][0]["kernel"] = small_params["convs"][0]["kernel"].sum(axis=3, keepdims=True)
  rgb_logits = _model_with(small_params, **SMALL)(jnp.repeat(grey, 3, axis=-1))
  grey_logits = _model_with(one_channel, in_channels=1, **SMALL)(grey)
  np.testing.assert_allclose(grey_logits, rgb_logits, rtol=1e-4, atol=1e-4 * np.abs(rgb_logits).max())


def test_fc8_zero_init_starts_every_logit_at_zero_and_leaves_the_rest_alone():
  plain = alexnet.AlexNet(10, init="he", rngs=nnx.Rngs(0), **SMALL)
  zero = alexnet.AlexNet(10, init="he", fc8_zero_init=True, rngs=nnx.Rngs(0), **SMALL)
  assert not np.any(np.asarray(zero.fc8.kernel[...]))
  np.testing.assert_array_equal(zero.fc7.kernel[...], plain.fc7.kernel[...])  # same draws elsewhere
  images = jnp.asarray(_images((3, 67, 67, 3), seed=1))
  zero.eval()
  logits = np.asarray(zero(images))
  assert np.all(logits == 0.0)  # so the first loss is exactly ln(10)
  plain.eval()
  assert np.abs(np.asarray(plain(images))).max() > 1.0


# ----------------------------------------------------------------------------------------------
# Invalid options.


@pytest.mark.parametrize(
  "option,value",
  [
    ("towers", 3),
    ("towers", 0),
    ("lrn_region", "x"),
    ("lrn_position", "x"),
    ("lrn_size", 4),
    ("lrn_size", 0),
    ("lrn_k", 0.0),
    ("lrn_alpha", -1.0),
    ("lrn_beta", -0.5),
    ("dropout_rate", 1.0),
    ("dropout_rate", -0.1),
    ("init", "x"),
    ("input_size", 66),
    ("width", 0.0),
    ("num_classes", 0),
    ("pool_window", 0),
    ("pool_stride", 0),
    ("in_channels", 0),
  ],
)
def test_invalid_option_raises(option, value):
  kwargs = {"num_classes": 10, option: value}
  with pytest.raises(ValueError, match=option):
    nnx.eval_shape(lambda: alexnet.AlexNet(**kwargs, rngs=nnx.Rngs(0)))


def test_too_small_input_names_smallest_size():
  with pytest.raises(ValueError, match="input_size >= 67"):
    alexnet.feature_map_sizes(66)
  assert alexnet.feature_map_sizes(67)["pool5"] == 1

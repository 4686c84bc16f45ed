"""The paper's augmentation and test views (``data/augment.py``) against numpy references."""

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from alexnet_jax.data import augment, options
from alexnet_jax.parallel import sharding

# A few float32 ulps of a view's largest value: what two differently compiled programs may differ by.
FLOAT32_ULPS = 4 * np.finfo(np.float32).eps


def assert_equal_across_programs(actual, expected, err_msg: str = "") -> None:
  """``actual`` equals ``expected`` though two differently compiled programs made them (other shapes, other
  options, sharded or not): integers and booleans exactly, floats to a few float32 ulps of the largest
  magnitude, since such programs may round differently on some CPUs (one ulp in 26 of 1,944 elements on
  an AVX-512 EPYC, docs/measurements.md)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  if np.issubdtype(expected.dtype, np.floating):
    tolerance = FLOAT32_ULPS * np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance, err_msg=err_msg)
  else:
    np.testing.assert_array_equal(actual, expected, err_msg=err_msg)


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
  """The fields of ``InputSpec`` the augmentation reads."""

  resize_size: int = 12
  crop_size: int = 9
  random_crop: bool = True
  random_flip: bool = True
  pca_noise_std: float = 0.1
  train_scale: float = 1.0
  eval_crops: str = "center"
  mean: np.ndarray = dataclasses.field(default_factory=lambda: np.array([0.4, 0.5, 0.6], np.float32))
  mean_crop: str = "at_view"
  std: tuple = (0.2, 0.25, 0.3)
  eigenvectors: tuple = options.PCA_EIGENVECTORS
  scales: tuple = options.pca_noise_basis("cuda_convnet")[1]
  model_channels: int = 3
  seed: int = 0


def random_squares(batch=4, size=12, channels=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, channels), dtype=np.uint8)


def numpy_mean_of_view(spec, top, left, flip):
  """What a view cut at (top, left), mirrored where ``flip``, loses: a channel mean; or of a mean
  image, Caffe's crop at the view's offset mirrored with it ("at_view": data_transformer.cpp reads
  mean[h_off + h, w_off + w] for the pixel it mirrors), or cuda-convnet2's ``data_mean_crop``
  ("center": the mean image's central crop, subtracted from the cut and mirrored view as it is)."""
  mean, size = np.asarray(spec.mean), spec.crop_size
  if mean.ndim == 1:
    return mean
  if spec.mean_crop == "center":
    border = (mean.shape[0] - size) // 2
    return mean[border : border + size, border : border + size]
  crop = mean[top : top + size, left : left + size]
  return crop[:, ::-1] if flip else crop


def numpy_views(squares, draws, spec):
  """The paper's training views, written out in numpy one image at a time."""
  size, views = spec.crop_size, []
  for square, (top, left), flip, alpha in zip(squares, draws["offset"], draws["flip"], draws["alpha"]):
    view = square[top : top + size, left : left + size].astype(np.float32) / 255
    if flip:
      view = view[:, ::-1]
    view = view - numpy_mean_of_view(spec, top, left, flip)
    if spec.pca_noise_std > 0:
      view = view + np.asarray(spec.eigenvectors) @ (np.asarray(alpha) * np.asarray(spec.scales))
    view = view * spec.train_scale / np.asarray(spec.std)
    views.append(np.repeat(view, spec.model_channels // view.shape[-1], axis=-1))
  return np.stack(views)


def test_train_views_are_the_papers_crop_flip_colour_noise_and_mean():
  spec = Spec()
  squares = random_squares()
  draws = {
    "offset": np.array([[0, 0], [3, 1], [2, 3], [1, 2]], np.int32),
    "flip": np.array([False, True, True, False]),
    "alpha": np.random.default_rng(1).normal(0, 0.1, (4, 3)).astype(np.float32),
  }
  views = jax.jit(augment.train_views, static_argnums=2)(squares, draws, spec)
  np.testing.assert_allclose(views, numpy_views(squares, draws, spec), atol=1e-5)


def test_train_scale_multiplies_the_coloured_training_view_and_not_the_test_views():
  """cuda-convnet2 (convdata.py, add_color_noise): the mean subtracted, the noise added, then the
  training data times 1/1.1; test data is not scaled."""
  spec = Spec(train_scale=1 / 1.1, eval_crops="ten_crop")
  squares = random_squares()
  draws = jax.device_get(augment.train_draws(augment.step_key(0, 2), 4, spec))
  scaled = np.asarray(augment.train_views(squares, draws, spec))
  np.testing.assert_allclose(scaled, numpy_views(squares, draws, spec), atol=1e-5)
  np.testing.assert_allclose(scaled * 1.1, augment.train_views(squares, draws, Spec()), atol=1e-5)
  unscaled = dataclasses.replace(spec, train_scale=1.0)
  assert_equal_across_programs(augment.eval_views(squares, spec), augment.eval_views(squares, unscaled))


MEAN_IMAGE = np.random.default_rng(2).uniform(0, 1, (12, 12, 3)).astype(np.float32)  # not constant, not symmetric
# Two corner crops, the centre mirrored, and another offset mirrored (squares of 12, crops of 9).
MEAN_DRAWS = {
  "offset": np.array([[3, 0], [0, 3], [1, 1], [2, 2]], np.int32),
  "flip": np.array([False, False, True, True]),
  "alpha": np.random.default_rng(3).normal(0, 0.1, (4, 3)).astype(np.float32),
}


@pytest.mark.parametrize("mean_crop", ["at_view", "center"])
def test_each_training_view_loses_its_crop_of_the_mean_image(mean_crop):
  """Caffe's rule ("at_view"): the mean image cut where the view is cut; cuda-convnet2's ("center"):
  its central crop from every view, corners and mirrored ones too; the colour noise after either."""
  spec = Spec(mean=MEAN_IMAGE, mean_crop=mean_crop)
  squares = random_squares()
  views = jax.jit(augment.train_views, static_argnums=2)(squares, MEAN_DRAWS, spec)
  np.testing.assert_allclose(views, numpy_views(squares, MEAN_DRAWS, spec), atol=1e-5)


@pytest.mark.parametrize("mean_crop", ["at_view", "center"])
def test_each_of_the_ten_crops_loses_its_crop_of_the_mean_image(mean_crop):
  spec = Spec(mean=MEAN_IMAGE, mean_crop=mean_crop, eval_crops="ten_crop", crop_size=8)
  squares = random_squares(batch=2)
  five = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
  expected = [
    (squares[:, top : top + 8, left : left + 8, :][:, :, ::step] / 255 - numpy_mean_of_view(spec, top, left, step < 0))
    / np.asarray(spec.std)
    for step in (1, -1)
    for top, left in five
  ]
  np.testing.assert_allclose(augment.eval_views(squares, spec), np.stack(expected, axis=1), atol=1e-5)


def test_the_two_mean_rules_differ_off_the_unmirrored_centre_and_agree_on_it():
  """On a mean image that is not constant, cuda-convnet2's rule changes every view but the plain
  centre one: the corners and the mirrored centre (whose mean Caffe mirrors too)."""
  caffe = Spec(mean=MEAN_IMAGE, eval_crops="ten_crop", crop_size=8)
  convnet = dataclasses.replace(caffe, mean_crop="center")
  squares = random_squares(batch=2)
  differ = np.abs(np.asarray(augment.eval_views(squares, caffe)) - np.asarray(augment.eval_views(squares, convnet)))
  per_view = differ.max(axis=(0, 2, 3, 4))
  assert per_view[options.CENTER_VIEW["ten_crop"]] == 0.0
  assert (np.delete(per_view, options.CENTER_VIEW["ten_crop"]) > 0.01).all()
  train = [augment.train_views(squares.repeat(2, axis=0), MEAN_DRAWS, s) for s in (caffe, convnet)]
  assert np.abs(np.asarray(train[0]) - np.asarray(train[1])).max(axis=(1, 2, 3)).min() > 0.01


@pytest.mark.parametrize("crops", ["ten_crop", "center"])
def test_with_a_channel_mean_both_rules_give_the_same_views(crops):
  spec = Spec(eval_crops=crops, crop_size=8)
  squares = random_squares()
  centre = dataclasses.replace(spec, mean_crop="center")
  assert_equal_across_programs(augment.eval_views(squares, spec), augment.eval_views(squares, centre))
  draws = jax.device_get(augment.train_draws(augment.step_key(0, 6), 4, spec))
  assert_equal_across_programs(augment.train_views(squares, draws, spec), augment.train_views(squares, draws, centre))


def test_an_unknown_mean_crop_is_refused_by_name():
  with pytest.raises(ValueError, match="config.input.mean_crop='centre' is not one of"):
    augment.eval_views(random_squares(), Spec(mean=MEAN_IMAGE, mean_crop="centre"))


def test_grey_squares_are_replicated_for_an_rgb_conv1_and_kept_for_a_grey_one():
  grey = dataclasses.replace(Spec(), mean=np.array([0.3], np.float32), std=(0.4,), pca_noise_std=0.0, model_channels=1)
  rgb = dataclasses.replace(grey, model_channels=3)
  squares = random_squares(channels=1)
  key = augment.step_key(0, 5)
  one = augment.train_views(squares, augment.train_draws(key, 4, grey), grey)
  three = augment.train_views(squares, augment.train_draws(key, 4, rgb), rgb)
  assert one.shape == (4, 9, 9, 1) and three.shape == (4, 9, 9, 3)
  for channel in range(3):
    assert_equal_across_programs(three[..., channel], one[..., 0])


def test_crop_positions_cover_every_window_and_flips_mirror_about_half():
  spec = Spec(resize_size=6, crop_size=4)
  draws = jax.device_get(augment.train_draws(augment.step_key(0, 0), 3000, spec))
  offsets = {tuple(o) for o in draws["offset"]}
  assert offsets == {(top, left) for top in range(3) for left in range(3)}
  counts = np.unique([tuple(o) for o in draws["offset"]], axis=0, return_counts=True)[1]
  assert counts.min() > 3000 / 9 * 0.8  # uniform over the 9 positions
  assert 0.45 < draws["flip"].mean() < 0.55


def test_colour_noise_coefficients_have_the_papers_distribution():
  draws = jax.device_get(augment.train_draws(augment.step_key(3, 7), 20_000, Spec(pca_noise_std=0.1)))
  np.testing.assert_allclose(draws["alpha"].mean(axis=0), 0.0, atol=0.005)
  np.testing.assert_allclose(draws["alpha"].std(axis=0), 0.1, rtol=0.03)
  assert abs(np.corrcoef(draws["alpha"].T)[0, 1]) < 0.03  # independent per component


@pytest.mark.parametrize("form,levels", [("cuda_convnet", (12.18, 3.71, 1.97)), ("fb_resnet", (5.55, 0.479, 0.115))])
def test_colour_noise_shifts_pixels_by_the_forms_grey_levels(form, levels):
  """alpha ~ N(0, 0.1) along eigenvector i moves pixels by 0.1 * scale_i: in 0-255 grey levels."""
  eigenvectors, scales = options.pca_noise_basis(form)
  alphas = np.random.default_rng(0).normal(0, 0.1, (50_000, 3)).astype(np.float32)
  shifts = np.asarray(augment.colour_shift(alphas, eigenvectors, scales))
  along = shifts @ np.asarray(eigenvectors)  # back onto the components (orthonormal basis)
  np.testing.assert_allclose(along.std(axis=0) * 255, levels, rtol=0.03)


def test_switched_off_augmentation_is_the_centre_unmirrored_and_uncoloured():
  spec = Spec(random_crop=False, random_flip=False, pca_noise_std=0.0)
  draws = jax.device_get(augment.train_draws(augment.step_key(0, 1), 16, spec))
  assert (draws["offset"] == 1).all() and not draws["flip"].any() and not draws["alpha"].any()


def test_draws_depend_on_seed_step_and_position_only():
  spec = Spec()
  small = jax.device_get(augment.train_draws(augment.step_key(0, 4), 4, spec))
  large = jax.device_get(augment.train_draws(augment.step_key(0, 4), 12, spec))
  for name in small:  # an example's draws do not depend on the batch around it
    assert_equal_across_programs(small[name], large[name][:4], err_msg=name)
  other_step = jax.device_get(augment.train_draws(augment.step_key(0, 5), 4, spec))
  other_seed = jax.device_get(augment.train_draws(augment.step_key(1, 4), 4, spec))
  assert not np.array_equal(small["alpha"], other_step["alpha"])
  assert not np.array_equal(small["alpha"], other_seed["alpha"])


def test_views_of_a_batch_sharded_over_devices_equal_the_unsharded_views():
  """Each process (device) computes its rows' views; they are those of one device holding the batch.

  The draws' offsets and flips and the uint8 crops are integers: equal exactly. The colour noise's
  coefficients and the float views come from two differently compiled programs (sharded and not): equal
  to a few float32 ulps (:func:`assert_equal_across_programs`)."""
  spec = Spec()
  squares = random_squares(batch=8)
  sharded = sharding.global_batch(squares, sharding.create_mesh(1))  # the trainer's mesh: 4 devices on "data"
  assert len(sharded.sharding.device_set) == 4
  key = augment.step_key(spec.seed, 3)
  draws = jax.jit(lambda x: augment.train_draws(key, x.shape[0], spec))
  for name, value in draws(squares).items():
    assert_equal_across_programs(draws(sharded)[name], value, err_msg=name)

  @jax.jit
  def crops(x):
    drawn = draws(x)
    return augment.cut(x, drawn["offset"], drawn["flip"], spec.crop_size)

  assert_equal_across_programs(crops(sharded), crops(squares))
  views = jax.jit(lambda x: augment.train_inputs(spec, {"image": x}, 3))
  assert_equal_across_programs(views(sharded), views(squares))


@pytest.mark.parametrize("crops", ["center", "center_flip", "ten_crop"])
def test_test_views_match_numpy_slicing_in_the_documented_order(crops):
  spec = Spec(eval_crops=crops, resize_size=12, crop_size=8)
  squares = random_squares(batch=2)
  views = np.asarray(augment.eval_views(squares, spec))
  images = (squares.astype(np.float32) / 255 - spec.mean) / np.asarray(spec.std)
  corners = [images[:, :8, :8], images[:, :8, 4:], images[:, 4:, :8], images[:, 4:, 4:]]
  centre = images[:, 2:10, 2:10]
  expected = {
    "center": centre,
    "center_flip": np.stack([centre, centre[:, :, ::-1]], axis=1),
    "ten_crop": np.stack([*corners, centre] + [v[:, :, ::-1] for v in (*corners, centre)], axis=1),
  }[crops]
  np.testing.assert_allclose(views, expected, atol=1e-5)
  if crops != "center":
    assert_equal_across_programs(views[:, options.CENTER_VIEW[crops]], augment.eval_views(squares, Spec(crop_size=8)))


def test_subtract_mean_gives_the_papers_centred_raw_pixels():
  config = ml_collections.ConfigDict({"dataset": "imagenet2012", "input": {"normalization": "subtract_mean"}})
  mean, std = options.mean_std(config)
  spec = Spec(mean=np.asarray(mean, np.float32), std=std, eval_crops="center", crop_size=12)
  squares = random_squares(batch=1)
  np.testing.assert_allclose(
    augment.eval_views(squares, spec), squares.astype(np.float32) - np.asarray(mean) * 255, atol=1e-3
  )

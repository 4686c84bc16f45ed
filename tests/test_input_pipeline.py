"""The tf.data input pipeline on tfds mock data, and the augmentation ops against numpy references."""

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax.config import validation
from alexnet_jax.data import augment, options, pipeline
from experiments import fashion_mnist

NUM_EXAMPLES = 18  # mock split size: with batch 4, an epoch ends inside a batch
BATCH = 4
MEAN, STD = (np.array(s, np.float32) for s in options.PIXEL_STATS["fashion_mnist"])


def small_config(dataset="fashion_mnist", **input_fields):
  """The first recipe's host pipeline (``small_data``) at test sizes, with ``input_fields`` set."""
  config = fashion_mnist.get_config("small_data:smoke")
  config.dataset = dataset
  config.batch_size = BATCH
  config.input.resize_size = 36
  config.input.crop_size = 32
  config.input.shuffle_buffer = 8
  config.eval_max_examples = -1
  for name, value in input_fields.items():
    setattr(config.input, name, value)
  return config


@pytest.fixture
def random_data():
  """Random mock examples (the same ones for every split and every read)."""
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def id_examples(num_examples):
  """An ``as_dataset`` mock whose example i has label i and an image filled with the value i."""

  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    del self, split, decoders, read_config, shuffle_files
    ids = tf.data.Dataset.range(num_examples)
    return ids.map(lambda i: {"image": tf.io.encode_png(tf.fill([28, 28, 1], tf.cast(i, tf.uint8))), "label": i})

  return tfds.testing.mock_data(
    num_examples=num_examples, as_dataset_fn=as_dataset, policy=tfds.testing.MockPolicy.USE_CODE
  )


def example_ids(images):
  """Recovers the fill value i of ``id_examples`` images (any leading dims) from normalised pixels."""
  pixels = images.reshape(images.shape[0], -1, 3).mean(axis=1) * STD + MEAN
  return np.rint(pixels[:, 0] * 255).astype(int)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["label"], y["label"])
    np.testing.assert_array_equal(x["image"], y["image"])


def test_train_batches_have_the_promised_shapes_dtypes_and_ranges(random_data):
  batch = next(pipeline.create_train_iterator(small_config(), seed=0))
  assert set(batch) == {"image", "label"}
  assert batch["image"].shape == (BATCH, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (BATCH,) and batch["label"].dtype == np.int32
  assert np.all((0 <= batch["label"]) & (batch["label"] < 10))
  low, high = (0 - MEAN) / STD, (1 - MEAN) / STD  # [0, 1] pixels after normalisation
  assert np.all(batch["image"] >= low - 1e-5) and np.all(batch["image"] <= high + 1e-5)
  assert batch["image"].std() > 0.5  # random pixels, not a constant
  np.testing.assert_array_equal(batch["image"][..., 0], batch["image"][..., 2])  # grey -> RGB


def test_same_seed_gives_the_same_batches_another_seed_others(random_data):
  config = small_config()
  first = take(pipeline.create_train_iterator(config, seed=7), 3)
  assert_same_batches(first, take(pipeline.create_train_iterator(config, seed=7), 3))
  other = take(pipeline.create_train_iterator(config, seed=8), 3)
  assert not np.array_equal(first[0]["image"], other[0]["image"])


# fashion_mnist: decoded once, kept in memory; imagenet2012 (images of varying size): streamed.
@pytest.mark.parametrize("dataset", ["fashion_mnist", "imagenet2012"])
@pytest.mark.parametrize("augment_on", ["host", "device"])
def test_resuming_at_a_step_yields_what_an_unbroken_run_yields(random_data, dataset, augment_on):
  config = small_config(dataset, pca_noise_std=0.1, augment_on=augment_on)
  unbroken = take(pipeline.create_train_iterator(config, seed=3), 11)
  for start_step in (3, 4, 9):  # mid-epoch, across the end of epoch 1, in epoch 3
    resumed = pipeline.create_train_iterator(config, seed=3, start_step=start_step)
    assert_same_batches(unbroken[start_step:], take(resumed, 11 - start_step))


# imagenet2012: views cut per example on the host; fashion_mnist: uint8 squares made once, kept in
# memory, and cut by the step -- also squares the size of the crop, which the step only flips.
@pytest.mark.parametrize(
  "dataset,resize,side", [("imagenet2012", 36, 32), ("fashion_mnist", 36, 36), ("fashion_mnist", 32, 32)]
)
def test_device_batches_are_uint8_views_that_the_step_finishes_into_the_host_views(random_data, dataset, resize, side):
  """The same draws: the views differ only by the uint8 rounding of the resized squares."""
  noise = 0.1 if dataset == "imagenet2012" else 0.0
  host = small_config(dataset, pca_noise_std=noise, resize_size=resize)
  device = small_config(dataset, pca_noise_std=noise, augment_on="device", resize_size=resize)
  finish = jax.jit(pipeline.device_preprocessing(device))
  for host_batch, device_batch in zip(
    take(pipeline.create_train_iterator(host, seed=4), 3), take(pipeline.create_train_iterator(device, seed=4), 3)
  ):
    assert device_batch["image"].dtype == np.uint8 and device_batch["image"].shape == (BATCH, side, side, 3)
    assert set(device_batch) == {"image", "label", "crop_offset", "flip", "pca_alpha"}
    np.testing.assert_array_equal(device_batch["label"], host_batch["label"])
    rounding = 0.5 / 255 / min(options.PIXEL_STATS[dataset][1])
    np.testing.assert_allclose(finish(device_batch), host_batch["image"], atol=rounding + 1e-5)


def concatenated(batches, key):
  return np.concatenate([batch[key] for batch in batches])


def test_each_epoch_is_a_fresh_permutation_of_the_split():
  with id_examples(NUM_EXAMPLES):
    batches = take(pipeline.create_train_iterator(small_config(), seed=0), 9)  # two epochs
  labels = concatenated(batches, "label")
  epochs = labels[:NUM_EXAMPLES], labels[NUM_EXAMPLES:]
  for epoch in epochs:
    assert sorted(epoch) == list(range(NUM_EXAMPLES))
  assert not np.array_equal(*epochs)


def test_crop_and_flip_vary_between_epochs_and_switch_off(random_data):
  def first_examples_of_two_epochs(**fields):
    config = small_config(shuffle_buffer=1, **fields)  # buffer 1: every epoch in the same order
    batches = take(pipeline.create_train_iterator(config, seed=0), 6)
    return [concatenated(batches, key)[[0, 1, NUM_EXAMPLES, NUM_EXAMPLES + 1]] for key in ("label", "image")]

  labels, images = first_examples_of_two_epochs()
  np.testing.assert_array_equal(labels[:2], labels[2:])
  assert not np.array_equal(images[:2], images[2:])
  _, images = first_examples_of_two_epochs(random_crop=False, random_flip=False)
  np.testing.assert_array_equal(images[:2], images[2:])


def test_eval_counts_every_example_exactly_once():
  num_examples = 23  # not a multiple of the batch size
  with id_examples(num_examples):
    batches = list(pipeline.create_eval_iterator(small_config()))
  assert len(batches) == -(-num_examples // BATCH)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.dtype == np.float32 and mask.sum() == num_examples
  real = mask == 1
  labels = np.concatenate([b["label"] for b in batches])[real]
  assert sorted(labels) == list(range(num_examples))
  images = np.concatenate([b["image"] for b in batches])
  np.testing.assert_array_equal(example_ids(images[real]), labels)  # each image kept its label


def test_eval_max_examples_limits_the_count(random_data):
  config = small_config()
  config.eval_max_examples = 10
  mask = np.concatenate([b["mask"] for b in pipeline.create_eval_iterator(config)])
  assert mask.sum() == 10 and len(mask) == 12
  assert pipeline.dataset_info(config) == (NUM_EXAMPLES, 10, 10)


def test_ten_crop_eval_holds_the_centre_crop_and_the_flips(random_data):
  centre = next(pipeline.create_eval_iterator(small_config()))
  ten = next(pipeline.create_eval_iterator(small_config(eval_crops="ten_crop")))
  assert ten["image"].shape == (BATCH, 10, 32, 32, 3)
  np.testing.assert_array_equal(ten["image"][:, 4], centre["image"])
  np.testing.assert_array_equal(ten["image"][:, 5:], ten["image"][:, :5, :, ::-1])
  pair = next(pipeline.create_eval_iterator(small_config(eval_crops="center_flip")))
  assert pair["image"].shape == (BATCH, 2, 32, 32, 3)
  np.testing.assert_array_equal(pair["image"][:, 0], centre["image"])
  np.testing.assert_array_equal(pair["image"][:, 1], centre["image"][:, :, ::-1])


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("crop_size", 40, "crop_size=40"),
    ("eval_crops", "five", "eval_crops='five'"),
    ("shuffle_buffer", 0, "shuffle_buffer=0"),
  ],
)
def test_bad_input_fields_name_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    validation.validate(small_config(**{field: value}), device_count=1)


def test_bad_batch_size_and_dataset_name_the_field():
  with pytest.raises(ValueError, match="batch_size=4 must be a positive multiple of the process count 3"):
    pipeline.local_batch_size(small_config(), process_count=3)
  config = small_config()
  config.dataset = "mnist"
  with pytest.raises(ValueError, match="config.dataset='mnist'.*fashion_mnist"):
    validation.validate(config, device_count=1)


def test_subtract_mean_gives_the_papers_centred_raw_pixels(random_data):
  standardized = next(pipeline.create_train_iterator(small_config(), seed=0))["image"]
  config = small_config()
  config.input.normalization = "subtract_mean"
  centred = next(pipeline.create_train_iterator(config, seed=0))["image"]
  np.testing.assert_allclose(centred, standardized * STD * 255, rtol=1e-4, atol=1e-3)


# The augmentation ops on small batches.


def random_images(batch=2, height=8, width=10, channels=3, seed=0):
  return np.random.default_rng(seed).random((batch, height, width, channels), np.float32)


def test_ten_crops_match_numpy_slicing():
  images, s = random_images(), 5
  crops = augment.ten_crops(tf.constant(images), s).numpy()
  expected = [images[:, :s, :s], images[:, :s, -s:], images[:, -s:, :s], images[:, -s:, -s:], images[:, 1:6, 2:7]]
  expected += [c[:, :, ::-1] for c in expected]
  np.testing.assert_array_equal(crops, np.stack(expected, axis=1))
  np.testing.assert_array_equal(augment.center_crop(tf.constant(images), s), expected[4])


def test_random_crops_are_windows_at_every_position_independently_per_image():
  s = 4
  images = np.repeat(random_images(1, 6, 6), 200, axis=0)
  crops = augment.random_crops(tf.constant(images), s, tf.constant([1, 1])).numpy()
  windows = {(i, j): images[0, i : i + s, j : j + s] for i in range(3) for j in range(3)}
  positions = [[pos for pos, window in windows.items() if np.array_equal(window, crop)] for crop in crops]
  assert all(len(found) == 1 for found in positions)  # each crop is one window of its image
  assert {found[0] for found in positions} == set(windows)  # and all 9 positions occur


def test_random_flips_mirror_about_half_of_the_images():
  images = np.repeat(random_images(1), 400, axis=0)
  out = augment.random_flips(tf.constant(images), tf.constant([2, 2])).numpy()
  flipped = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(flipped | np.all(out == images, axis=(1, 2, 3)))
  assert 0.4 < flipped.mean() < 0.6


@pytest.mark.parametrize("form", options.PCA_NOISE_FORMS)
def test_pca_lighting_matches_the_papers_formula(form):
  images, seed, std = random_images(batch=3), tf.constant([3, 4]), 0.1
  alpha = tf.random.stateless_normal([3, 3], seed=seed, stddev=std).numpy()  # (images, components)
  eigvec, scales = (np.array(x) for x in options.pca_noise_basis(form))
  got = augment.pca_lighting(tf.constant(images), std, seed, eigenvectors=eigvec, scales=scales).numpy()
  for image, got_one, a in zip(images, got, alpha):
    np.testing.assert_allclose(got_one, image + eigvec @ (a * scales), atol=1e-6)  # [p1 p2 p3][a_i s_i]


def test_pca_lighting_noise_has_the_papers_statistics():
  n, std = 4000, 0.1
  eigvec, eigval = np.array(augment.PCA_EIGENVECTORS), np.array(augment.PCA_EIGENVALUES)
  noise = augment.pca_lighting(tf.zeros([n, 1, 1, 3]), std, tf.constant([9, 9]), eigenvectors=eigvec, scales=eigval)
  shifts = noise.numpy().reshape(n, 3)
  alphas = np.linalg.solve(eigvec, shifts.T).T / eigval  # recover a_i
  assert np.all(np.abs(alphas.mean(axis=0)) < 4 * std / np.sqrt(n))
  np.testing.assert_allclose(alphas.std(axis=0), std, rtol=0.05)
  np.testing.assert_allclose(np.corrcoef(alphas.T), np.eye(3), atol=0.06)  # independent draws


@pytest.mark.parametrize(
  "form,levels",
  [("cuda_convnet", (12.18, 3.709, 1.972)), ("fb_resnet", (5.546, 0.4794, 0.1148))],
)
def test_pca_noise_shifts_pixels_by_the_forms_grey_levels(form, levels):
  """cuda-convnet2 (the authors): 0.1 * sigma_i = 12.2 / 3.7 / 2.0 grey levels along each eigenvector;
  fb.resnet.torch's alpha * eigval: 5.5 / 0.48 / 0.12 (measured over many draws, on [0, 255])."""
  n = 20_000
  eigvec, scales = options.pca_noise_basis(form)
  shifts = (
    augment.pca_lighting(tf.zeros([n, 1, 1, 3]), 0.1, tf.constant([5, 6]), eigenvectors=eigvec, scales=scales)
    .numpy()
    .reshape(n, 3)
  )
  along = shifts @ np.array(eigvec) * 255  # the shift's component along each eigenvector, in grey levels
  np.testing.assert_allclose(along.std(axis=0), levels, rtol=0.03)


def test_the_default_colour_noise_is_the_authors_form():
  """train_views' default basis and the paper config's form are cuda-convnet2's."""
  from experiments import imagenet2012

  default = augment.train_views.__kwdefaults__
  assert (default["eigenvectors"], default["scales"]) == options.pca_noise_basis("cuda_convnet")
  assert imagenet2012.get_config().input.pca_noise_form == "cuda_convnet"


def test_pca_noise_basis_from_a_stores_eigenpairs():
  eigvec = np.eye(3)[:, ::-1]
  vectors, scales = options.pca_noise_basis("cuda_convnet", np.array([0.04, 0.01, 0.0025]), eigvec)
  np.testing.assert_allclose(scales, (0.2, 0.1, 0.05))
  np.testing.assert_array_equal(vectors, eigvec)
  assert options.pca_noise_basis("fb_resnet", (0.04, 0.01, 0.0025), eigvec)[1] == (0.04, 0.01, 0.0025)


def test_resize_keeps_the_aspect_ratio_and_antialiases_when_shrinking():
  def dynamic(size, channels):  # the path for images whose size is only known per image
    return tf.function(
      lambda images: augment.resize_shorter_side(images, size), input_signature=[tf.TensorSpec([None, None, channels])]
    )

  for resize in (augment.resize_shorter_side, lambda images, size: dynamic(size, images.shape[-1])(images)):
    assert resize(tf.zeros([20, 30, 3]), 10).shape == (10, 15, 3)
    assert resize(tf.zeros([30, 20, 1]), 10).shape == (15, 10, 1)
    assert resize(tf.zeros([4, 6, 3]), 8).shape == (8, 12, 3)
    checkerboard = (np.indices([40, 40]).sum(axis=0) % 2).astype(np.float32)[..., None]
    np.testing.assert_allclose(resize(tf.constant(checkerboard), 10), 0.5, atol=0.05)  # not aliased
  assert augment.resize_shorter_side(tf.zeros([2, 30, 20, 1]), 10).shape == (2, 15, 10, 1)


def test_views_of_grey_images_are_normalised_rgb_replicas():
  grey = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 1), np.uint8)
  squares = augment.central_square(tf.constant(grey), 12)
  centre = augment.eval_views(squares, crop_size=8, mean=(0.5,), std=(0.25,)).numpy()
  np.testing.assert_allclose(centre, np.repeat((grey[:, 2:10, 2:10] / 255 - 0.5) / 0.25, 3, axis=-1), atol=1e-5)
  ten = augment.eval_views(squares, crop_size=8, mean=(0.5,), std=(0.25,), crops="ten_crop")
  assert ten.shape == (2, 10, 8, 8, 3)
  view = augment.train_views(squares, tf.constant([1, 2]), crop_size=8, mean=(0.5,), std=(0.25,), lighting_std=0.1)
  assert view.shape == (2, 8, 8, 3) and not np.allclose(view[..., 0], view[..., 1])  # coloured noise


@pytest.mark.parametrize("augment_on", ["host", "device"])
def test_grey_views_for_a_one_channel_conv1_are_the_first_channel_of_the_rgb_views(random_data, augment_on):
  """``config.model.in_channels=1``: the same pixels, not replicated, through train and eval."""
  rgb, grey = small_config(augment_on=augment_on), small_config(augment_on=augment_on)
  grey.model.in_channels = 1
  finish = jax.jit(pipeline.device_preprocessing(rgb)) if augment_on == "device" else None
  finish_grey = jax.jit(pipeline.device_preprocessing(grey)) if augment_on == "device" else None
  for rgb_batch, grey_batch in zip(
    take(pipeline.create_train_iterator(rgb, seed=5), 2), take(pipeline.create_train_iterator(grey, seed=5), 2)
  ):
    side = 36 if augment_on == "device" else 32  # the step cuts the device pipeline's 36x36 squares
    assert grey_batch["image"].shape == (BATCH, side, side, 1)
    rgb_images = np.asarray(finish(rgb_batch)) if finish else rgb_batch["image"]
    grey_images = np.asarray(finish_grey(grey_batch)) if finish_grey else grey_batch["image"]
    assert grey_images.shape == (BATCH, 32, 32, 1)
    np.testing.assert_allclose(grey_images[..., 0], rgb_images[..., 0], rtol=1e-6, atol=1e-6)  # jit rounding
  for crops in ("center", "center_flip"):
    rgb.input.eval_crops = grey.input.eval_crops = crops
    rgb_eval = next(pipeline.create_eval_iterator(rgb))["image"]
    grey_eval = next(pipeline.create_eval_iterator(grey))["image"]
    assert grey_eval.shape == (*rgb_eval.shape[:-1], 1)
    np.testing.assert_array_equal(grey_eval[..., 0], rgb_eval[..., 0])


def test_to_channels_replicates_grey_and_refuses_to_invent_colour():
  grey = tf.zeros([2, 4, 4, 1])
  assert augment.to_channels(grey, 3).shape == (2, 4, 4, 3)
  assert augment.to_channels(grey, 1).shape == (2, 4, 4, 1)
  with pytest.raises(ValueError, match="1-channel images of 3-channel"):
    augment.to_channels(tf.zeros([4, 4, 3]), 1)

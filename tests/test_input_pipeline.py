"""The tf.data input pipeline on tfds mock data, and the augmentation ops against numpy references."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax import augment, datasets, input_pipeline
from experiments import fashion_mnist

NUM_EXAMPLES = 20   # mock split size: with batch 4, five steps per epoch
BATCH = 4
MEAN, STD = (np.array(s, np.float32) for s in datasets.PIXEL_STATS["fashion_mnist"])


def small_config(**input_fields):
  config = fashion_mnist.get_config("smoke")
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
    return ids.map(lambda i: {"image": tf.io.encode_png(tf.fill([28, 28, 1], tf.cast(i, tf.uint8))),
                              "label": i})
  return tfds.testing.mock_data(num_examples=num_examples, as_dataset_fn=as_dataset,
                                policy=tfds.testing.MockPolicy.USE_CODE)


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
  batch = next(input_pipeline.create_train_iterator(small_config(), seed=0))
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
  first = take(input_pipeline.create_train_iterator(config, seed=7), 3)
  assert_same_batches(first, take(input_pipeline.create_train_iterator(config, seed=7), 3))
  other = take(input_pipeline.create_train_iterator(config, seed=8), 3)
  assert not np.array_equal(first[0]["image"], other[0]["image"])


@pytest.mark.parametrize("start_step", [3, 5, 7])  # mid-epoch, at the boundary, in the second epoch
def test_resuming_at_a_step_yields_what_an_unbroken_run_yields(random_data, start_step):
  config = small_config(pca_noise_std=0.1)
  unbroken = take(input_pipeline.create_train_iterator(config, seed=3), 12)
  resumed = take(input_pipeline.create_train_iterator(config, seed=3, start_step=start_step), 12 - start_step)
  assert_same_batches(unbroken[start_step:], resumed)


def test_each_epoch_is_a_fresh_permutation_of_the_split():
  steps_per_epoch = NUM_EXAMPLES // BATCH
  with id_examples(NUM_EXAMPLES):
    batches = take(input_pipeline.create_train_iterator(small_config(), seed=0), 2 * steps_per_epoch)
  epochs = [np.concatenate([b["label"] for b in batches[i:i + steps_per_epoch]])
            for i in (0, steps_per_epoch)]
  for labels in epochs:
    assert sorted(labels) == list(range(NUM_EXAMPLES))
  assert not np.array_equal(*epochs)


def test_crop_and_flip_vary_between_epochs_and_switch_off(random_data):
  steps_per_epoch = NUM_EXAMPLES // BATCH

  def first_batch_of_two_epochs(**fields):
    config = small_config(shuffle_buffer=1, **fields)  # buffer 1: every epoch in the same order
    batches = take(input_pipeline.create_train_iterator(config, seed=0), steps_per_epoch + 1)
    return batches[0], batches[steps_per_epoch]

  a, b = first_batch_of_two_epochs()
  np.testing.assert_array_equal(a["label"], b["label"])
  assert not np.array_equal(a["image"], b["image"])
  a, b = first_batch_of_two_epochs(random_crop=False, random_flip=False)
  np.testing.assert_array_equal(a["image"], b["image"])


def test_eval_counts_every_example_exactly_once():
  num_examples = 23  # not a multiple of the batch size
  with id_examples(num_examples):
    batches = list(input_pipeline.create_eval_iterator(small_config()))
  assert len(batches) == -(-num_examples // BATCH)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.dtype == np.float32 and mask.sum() == num_examples
  real = mask == 1
  labels = np.concatenate([b["label"] for b in batches])[real]
  assert sorted(labels) == list(range(num_examples))
  images = np.concatenate([b["image"] for b in batches])
  np.testing.assert_array_equal(example_ids(images[real]), labels)  # each image kept its label
  assert not images[~real].any()


def test_eval_max_examples_limits_the_count(random_data):
  config = small_config()
  config.eval_max_examples = 10
  mask = np.concatenate([b["mask"] for b in input_pipeline.create_eval_iterator(config)])
  assert mask.sum() == 10 and len(mask) == 12
  assert input_pipeline.dataset_info(config) == (NUM_EXAMPLES, 10, 10)


def test_ten_crop_eval_holds_the_centre_crop_and_the_flips(random_data):
  centre = next(input_pipeline.create_eval_iterator(small_config()))
  ten = next(input_pipeline.create_eval_iterator(small_config(eval_crops="ten_crop")))
  assert ten["image"].shape == (BATCH, 10, 32, 32, 3)
  np.testing.assert_array_equal(ten["image"][:, 4], centre["image"])
  np.testing.assert_array_equal(ten["image"][:, 5:], ten["image"][:, :5, :, ::-1])


@pytest.mark.parametrize("field,value,message", [
    ("crop_size", 40, "crop_size=40"),
    ("eval_crops", "five", "eval_crops='five'"),
    ("shuffle_buffer", 0, "shuffle_buffer=0"),
])
def test_bad_input_fields_name_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    input_pipeline.validate_input_config(small_config(**{field: value}))


def test_bad_batch_size_and_dataset_name_the_field():
  with pytest.raises(ValueError, match="batch_size=4 must be a positive multiple of the process count 3"):
    input_pipeline.validate_input_config(small_config(), process_count=3)
  config = small_config()
  config.dataset = "mnist"
  with pytest.raises(ValueError, match="config.dataset='mnist'.*fashion_mnist"):
    input_pipeline.validate_input_config(config)


# The augmentation ops on small tensors.

def random_image(height=8, width=10, seed=0):
  return np.random.default_rng(seed).random((height, width, 3), np.float32)


def test_ten_crops_match_numpy_slicing():
  image, s = random_image(), 5
  crops = augment.ten_crops(tf.constant(image), s).numpy()
  expected = [image[:s, :s], image[:s, -s:], image[-s:, :s], image[-s:, -s:], image[1:6, 2:7]]
  expected += [c[:, ::-1] for c in expected]
  np.testing.assert_array_equal(crops, np.stack(expected))
  np.testing.assert_array_equal(augment.center_crop(tf.constant(image), s), expected[4])


def test_random_crop_is_a_window_and_visits_every_position():
  image, s = random_image(6, 6), 4
  windows = {(i, j): image[i:i + s, j:j + s] for i in range(3) for j in range(3)}
  seen = set()
  for k in range(200):
    crop = augment.random_crop(tf.constant(image), s, tf.constant([k, 1])).numpy()
    seen |= {pos for pos, window in windows.items() if np.array_equal(window, crop)}
  assert seen == set(windows)


def test_random_flip_mirrors_about_half_the_time():
  image = random_image()
  flipped = [not np.array_equal(augment.random_flip(tf.constant(image), tf.constant([k, 2])), image)
             for k in range(400)]
  for k in range(3):
    out = augment.random_flip(tf.constant(image), tf.constant([k, 2])).numpy()
    assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
  assert 0.4 < np.mean(flipped) < 0.6


def test_pca_lighting_matches_the_papers_formula():
  image, seed, std = random_image(), tf.constant([3, 4]), 0.1
  alpha = tf.random.stateless_normal([3], seed=seed, stddev=std).numpy()
  eigvec, eigval = np.array(augment.PCA_EIGENVECTORS), np.array(augment.PCA_EIGENVALUES)
  expected = image + eigvec @ (alpha * eigval)  # [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T, every pixel
  np.testing.assert_allclose(augment.pca_lighting(tf.constant(image), std, seed), expected, atol=1e-6)


def test_pca_lighting_noise_has_the_papers_statistics():
  n, std = 4000, 0.1
  seeds = tf.stack([tf.range(n), tf.fill([n], 9)], axis=1)
  shifts = tf.vectorized_map(lambda s: augment.pca_lighting(tf.zeros([1, 1, 3]), std, s), seeds)
  eigvec, eigval = np.array(augment.PCA_EIGENVECTORS), np.array(augment.PCA_EIGENVALUES)
  alphas = np.linalg.solve(eigvec, shifts.numpy().reshape(n, 3).T).T / eigval  # recover a_i
  assert np.all(np.abs(alphas.mean(axis=0)) < 4 * std / np.sqrt(n))
  np.testing.assert_allclose(alphas.std(axis=0), std, rtol=0.05)
  np.testing.assert_allclose(np.corrcoef(alphas.T), np.eye(3), atol=0.06)  # independent draws


def test_resize_keeps_the_aspect_ratio_and_grey_becomes_rgb():
  grey = tf.zeros([20, 30, 1], tf.uint8)
  assert augment.resize_shorter_side(tf.zeros([20, 30, 3]), 10).shape == (10, 15, 3)
  assert augment.resize_shorter_side(tf.zeros([30, 20, 3]), 10).shape == (15, 10, 3)
  assert augment.central_square(grey, 10).shape == (10, 10, 3)
  np.testing.assert_array_equal(augment.to_rgb(tf.constant(random_image(4, 4)[..., :1]))[..., 2],
                                random_image(4, 4)[..., 0])

"""The input spec (``data/input_spec.py``) and the grain loader (``data/loader.py``) on small real datasets."""

import dataclasses
import hashlib
import io
import os

import grain
import numpy as np
import pytest
from PIL import Image

from alexnet_jax import utils
from alexnet_jax.data import images, input_spec, loader
from alexnet_jax.train import validation
from experiments import fashion_mnist, imagenet2012

BATCH = 8


@pytest.fixture(autouse=True)
def _mock(mock_data):
  del mock_data  # the mock datasets (64 examples per split) as TFDS's default data directory


def small_config(dataset="fashion_mnist", **input_fields):
  config = fashion_mnist.get_config("smoke") if dataset != "imagenet2012" else imagenet2012.get_config("smoke")
  config.dataset = dataset
  config.eval_split = "validation" if dataset == "imagenet2012" else "test"
  config.model.num_classes = 1000 if dataset == "imagenet2012" else 10
  config.batch_size = BATCH
  config.input.resize_size, config.input.crop_size = 36, 32
  config.eval_max_examples = -1
  for name, value in input_fields.items():
    setattr(config.input, name, value)
  return config


def spec_of(config=None, **route):
  spec = input_spec.build(config or small_config())
  return dataclasses.replace(spec, **route) if route else spec


def ids(squares: np.ndarray) -> list[str]:
  return [hashlib.sha1(square.tobytes()).hexdigest() for square in squares]


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_the_spec_decides_the_route_and_counts_once():
  spec = spec_of()
  assert (spec.num_train, spec.num_eval, spec.num_classes, spec.image_channels) == (64, 64, 10, 1)
  assert spec.route is input_spec.Route.IN_MEMORY and spec.steps_per_epoch == 8
  assert input_spec.build(small_config("imagenet2012")).route is input_spec.Route.STREAMED  # varying sizes
  assert input_spec.build(small_config(), in_memory_limit_bytes=0).route is input_spec.Route.STREAMED


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("train_split", "nope", "config.train_split='nope' cannot be read from fashion_mnist"),
    ("eval_split", "test[:0]", "config.eval_split='test[:0]' of fashion_mnist holds no examples"),
    ("batch_size", 128, "config.batch_size=128 exceeds the 64 training examples"),
  ],
)
def test_bad_splits_and_batches_name_the_field(field, value, message):
  config = small_config()
  config[field] = value
  with pytest.raises(validation.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
    input_spec.build(config)


def test_train_batches_are_uint8_squares_and_labels():
  batch = next(loader.train_batches(spec_of()))
  assert set(batch) == {"image", "label"}
  assert batch["image"].shape == (BATCH, 36, 36, 1) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (BATCH,) and batch["label"].dtype == np.int32
  assert batch["image"].std() > 10  # random pixels, resized


@pytest.mark.parametrize("route", list(input_spec.Route))
def test_each_epoch_is_a_fresh_permutation_of_the_split(route):
  spec = spec_of(route=route)
  squares, _ = loader.squares_in_memory(spec, spec.train_split)
  batches = take(loader.train_batches(spec), 2 * spec.steps_per_epoch)
  epochs = [sum((ids(b["image"]) for b in batches[e * 8 : (e + 1) * 8]), []) for e in range(2)]
  assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(ids(squares))
  assert epochs[0] != epochs[1]


def test_the_routes_give_the_same_batches():
  memory, streamed = spec_of(route=input_spec.Route.IN_MEMORY), spec_of(route=input_spec.Route.STREAMED)
  for a, b in zip(take(loader.train_batches(memory), 3), take(loader.train_batches(streamed), 3)):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_the_number_of_read_threads_does_not_change_the_batches():
  one, three = (spec_of(route=input_spec.Route.STREAMED, read_threads=n) for n in (1, 3))
  for a, b in zip(take(loader.train_batches(one, start_step=5), 4), take(loader.train_batches(three, start_step=5), 4)):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  for a, b in zip(loader.eval_batches(one), loader.eval_batches(three)):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_read_threads_zero_reads_with_the_usable_cores():
  assert spec_of().read_threads == len(os.sched_getaffinity(0)) == utils.usable_cores()
  assert spec_of(small_config(read_threads=3)).read_threads == 3


@pytest.mark.parametrize("count,batch,shards", [(64, 8, 1), (64, 24, 3), (1_281_167, 512, 4)])
def test_the_training_order_is_grains_shuffle_repeated(count, batch, shards):
  """The batch-level order is exactly the per-element order runs have always read (and resume into)."""
  order = grain.MapDataset.range(count).shuffle(seed=7).repeat()
  local = batch // shards
  last_step = count // batch + 2  # across the first epoch boundary
  for step, shard in [(0, 0), (3, shards - 1), (last_step - 3, 0), (last_step, shards - 1)]:
    indices = loader._train_indices(step, count=count, seed=7, batch=batch, local=local, shard=shard)
    first = step * batch + shard * local
    assert indices.tolist() == [order[q] for q in range(first, first + local)]


def test_resuming_at_a_step_is_random_access_to_the_same_stream():
  spec = spec_of()
  unbroken = take(loader.train_batches(spec), 11)
  resumed = take(loader.train_batches(spec, start_step=6), 5)
  for a, b in zip(unbroken[6:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_the_global_stream_does_not_depend_on_the_number_of_shards():
  spec = spec_of()
  whole = take(loader.train_batches(spec, start_step=3), 4)
  halves = [take(loader.train_batches(spec, start_step=3, shard_index=i, shard_count=2), 4) for i in range(2)]
  for step, batch in enumerate(whole):
    joined = np.concatenate([halves[0][step]["image"], halves[1][step]["image"]])
    np.testing.assert_array_equal(joined, batch["image"])


def test_another_seed_gives_another_order():
  first = next(loader.train_batches(spec_of()))
  other = next(loader.train_batches(dataclasses.replace(spec_of(), seed=1)))
  assert ids(first["image"]) != ids(other["image"])


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_eval_counts_every_example_once_and_pads_the_last_batch(shards):
  spec = dataclasses.replace(spec_of(), batch_size=24)  # 64 examples: 3 batches, the last one 16 real
  squares, _ = loader.squares_in_memory(spec, spec.eval_split)
  per_shard = [list(loader.eval_batches(spec, shard_index=i, shard_count=shards)) for i in range(shards)]
  assert {len(batches) for batches in per_shard} == {3}
  seen = []
  for batches in per_shard:
    for batch in batches:
      assert batch["image"].shape[0] == 24 // shards
      seen += ids(batch["image"][batch["mask"] > 0])
      assert not batch["image"][batch["mask"] == 0].any()
  assert sorted(seen) == sorted(ids(squares))


def test_eval_max_examples_limits_the_count():
  config = small_config()
  config.eval_max_examples = 20
  spec = spec_of(config)
  assert spec.num_eval == 20
  assert sum(int(b["mask"].sum()) for b in loader.eval_batches(spec)) == 20


def test_streamed_images_of_any_size_become_their_central_squares():
  spec = spec_of(small_config("imagenet2012", resize_size=36))
  source = spec.source(spec.eval_split)
  batch = next(loader.eval_batches(spec))
  for row in range(3):
    expected = images.central_square(images.decode(source[row]["image"], 3), 36)
    np.testing.assert_array_equal(batch["image"][row], expected)
    assert batch["label"][row] == source[row]["label"]


def test_central_square_keeps_the_aspect_ratio_and_antialiases_when_shrinking():
  stripes = np.zeros((40, 80, 1), np.uint8)
  stripes[:, ::2] = 255  # one-pixel stripes: shrunk 4x without antialiasing they would alias
  square = images.central_square(stripes, 10)
  assert square.shape == (10, 10, 1)
  assert np.abs(square.astype(int) - 127).max() < 16
  wide = np.zeros((20, 60, 3), np.uint8)
  wide[:, 30:] = 255  # the right half white: the central square keeps the middle third
  square = images.central_square(wide, 10)
  assert square[:, :3].max() == 0 and square[:, -3:].min() == 255


def test_decoding_converts_grey_and_colour_and_drops_alpha():
  rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
  grey = images.decode(images.encode_png(rgb), 1)
  expected = np.round(rgb @ np.array([0.299, 0.587, 0.114]))
  assert np.abs(grey[..., 0].astype(int) - expected).max() <= 1
  np.testing.assert_array_equal(images.decode(images.encode_png(grey), 3), np.repeat(grey, 3, axis=-1))
  with_alpha = io.BytesIO()
  Image.fromarray(np.concatenate([rgb, np.zeros((5, 6, 1), np.uint8)], axis=-1), "RGBA").save(with_alpha, "PNG")
  np.testing.assert_array_equal(images.decode(with_alpha.getvalue(), 3), rgb)

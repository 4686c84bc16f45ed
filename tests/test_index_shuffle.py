"""``data/index_shuffle.py`` against grain's own ``index_shuffle`` (C++): the same permutation, elementwise."""

import numpy as np
import pytest
from grain.experimental import index_shuffle as grains

from alexnet_jax.data.index_shuffle import index_shuffle


@pytest.mark.parametrize("max_index", [1, 2, 63, 64, 65, 256, 2559, 65536, 1_281_166, 2**31, 2**40 + 5, 2**62 + 3])
def test_the_permutation_is_grains(max_index):
  rng = np.random.default_rng(max_index)
  indices = np.unique(np.concatenate([np.arange(min(max_index + 1, 40)), rng.integers(0, max_index, 100)]))
  for seed, rounds in [(0, 4), (7, 4), (2**32 - 1, 4), (9, 6), (3, 8)]:
    expected = [grains(index, max_index, seed, rounds) for index in indices.tolist()]
    assert index_shuffle(indices, max_index, seed, rounds).tolist() == expected


def test_it_is_a_permutation():
  assert sorted(index_shuffle(np.arange(2560), 2559, 3, 4).tolist()) == list(range(2560))
  assert index_shuffle(np.zeros(1, np.int64), 0, 5, 4).tolist() == [0]

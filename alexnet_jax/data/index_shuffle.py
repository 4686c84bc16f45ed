"""grain's ``index_shuffle`` for a whole array of indices at once, in numpy: the same permutation.

The training order (``loader.py``) is ``grain.MapDataset.range(N).shuffle(seed).repeat()``: position
``k`` of epoch ``e`` holds ``grain.experimental.index_shuffle(k, N - 1, seed + e, 4)``. grain computes
it one call per example (~3 CPU-us each, in the read threads, holding the GIL); this computes a batch
with a few numpy operations. The algorithm, as grain's ``index_shuffle.cc`` writes it: a Simon-like
Feistel cipher on blocks of ``2 W`` bits (the bits of ``max_index``, even, at least 16), its round keys
drawn from C++'s ``std::seed_seq{seed}``, applied again while the result exceeds ``max_index`` (cycle
walking), so every index lands in ``[0, max_index]`` exactly once. Tests compare it with grain's own.
"""

from __future__ import annotations

import math

import numpy as np

_MIN_BLOCK_BITS = 16  # grain: smaller blocks showed patterns
_WORD32 = 2**32 - 1


def index_shuffle(indices: np.ndarray, max_index: int, seed: int, rounds: int) -> np.ndarray:
  """Positions of ``indices`` (each in ``[0, max_index]``) in grain's permutation of ``[0, max_index]``
  drawn with ``seed`` and ``rounds`` (even, >= 4): ``grain.experimental.index_shuffle`` elementwise."""
  if max_index == 0:
    return np.zeros(np.shape(indices), np.int64)
  bits = math.ceil(math.log2(max_index))
  bits = max(bits + bits % 2, _MIN_BLOCK_BITS)
  word = 32 if bits > 62 else bits // 2
  mask = np.uint64(2**word - 1)
  keys = [np.uint64(key) & mask for key in _seed_seq(seed, rounds)]
  if bits == _MIN_BLOCK_BITS:  # max_index may be far below the block: long walks, followed in a table
    block = _encrypt(np.arange(2**bits, dtype=np.uint64), keys, word, mask)
    return _walk_in_table(np.asarray(indices), max_index, block)
  shuffled = _encrypt(np.asarray(indices, np.uint64), keys, word, mask)
  while (outside := shuffled > max_index).any():  # max_index >= a quarter of the block: a few rounds
    shuffled[outside] = _encrypt(shuffled[outside], keys, word, mask)
  return shuffled.astype(np.int64)


def _walk_in_table(indices: np.ndarray, max_index: int, encrypted: np.ndarray) -> np.ndarray:
  """Each index encrypted again and again (``encrypted``: the cipher of every block value) until it is
  at most ``max_index``; a whole epoch's walks visit each block value once at most."""
  table = encrypted.tolist()
  shuffled = []
  for index in indices.tolist():
    index = table[index]
    while index > max_index:
      index = table[index]
    shuffled.append(index)
  return np.asarray(shuffled, np.int64).reshape(indices.shape)


def _encrypt(values: np.ndarray, keys: list[np.uint64], word: int, mask: np.uint64) -> np.ndarray:
  """Blocks of ``2 word`` bits through the Feistel rounds, two keys per pair of rounds."""
  left, right = (values >> np.uint64(word)) & mask, values & mask
  for first, second in zip(keys[::2], keys[1::2]):
    left = left ^ _round(right, word, mask) ^ first
    right = right ^ _round(left, word, mask) ^ second
  return (left << np.uint64(word)) | right


def _round(x: np.ndarray, word: int, mask: np.uint64) -> np.ndarray:
  """Simon's round function on ``word``-bit words: ``(x <<< 1 & x <<< 8) ^ x <<< 2``."""
  return (_rotate_left(x, 1, word, mask) & _rotate_left(x, 8, word, mask)) ^ _rotate_left(x, 2, word, mask)


def _rotate_left(x: np.ndarray, shift: int, word: int, mask: np.uint64) -> np.ndarray:
  return ((x << np.uint64(shift)) | (x >> np.uint64(word - shift))) & mask


def _seed_seq(seed: int, count: int) -> list[int]:
  """``count`` 32-bit words of C++'s ``std::seed_seq{seed}.generate`` (the standard's [rand.util.seedseq])."""
  out = [0x8B8B8B8B] * count
  t = 11 if count >= 623 else 7 if count >= 68 else 5 if count >= 39 else 3 if count >= 7 else (count - 1) // 2
  p, q = (count - t) // 2, (count - t) // 2 + t
  mixed = max(2, count)  # max(s + 1, n) with one seed word (s = 1)
  for k in range(mixed):
    r1 = 1664525 * _fold(out[k % count] ^ out[(k + p) % count] ^ out[(k - 1) % count]) & _WORD32
    r2 = (r1 + (1 if k == 0 else k % count + seed if k == 1 else k % count)) & _WORD32
    out[(k + p) % count] = (out[(k + p) % count] + r1) & _WORD32
    out[(k + q) % count] = (out[(k + q) % count] + r2) & _WORD32
    out[k % count] = r2
  for k in range(mixed, mixed + count):
    r3 = 1566083941 * _fold((out[k % count] + out[(k + p) % count] + out[(k - 1) % count]) & _WORD32) & _WORD32
    r4 = (r3 - k % count) & _WORD32
    out[(k + p) % count] ^= r3
    out[(k + q) % count] ^= r4
    out[k % count] = r4
  return out


def _fold(x: int) -> int:
  return x ^ (x >> 27)

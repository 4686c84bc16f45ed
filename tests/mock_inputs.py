"""Mock data for the tests that train: tfds.testing.mock_data under the real input pipeline.

Every split of every dataset then holds ``NUM_EXAMPLES`` random examples of the dataset's own
features (Fashion-MNIST's 28x28 grey images, ImageNet's variable-size colour ones), read through
the same tf.data code as real data.

One change to tfds's mock: inside ``builder.as_dataset`` it redirects the whole process's file
system to a temporary folder (``tfds.testing.MockFs``), only so that the dataset folder appears to
exist. Orbax finishes checkpoints on a background thread, and a rename that lands in that window
goes to the wrong place. Here the folder is really created instead, and left in place: it is the
same path in every process (``/tmp/non-existing/tfds/...``), so removing it after one process's call
pulled it from under another's (two trainers of a sweep, or two pytest sessions) -- a
FileNotFoundError that failed the run.
"""

import contextlib
import os
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.testing import test_utils

NUM_EXAMPLES = 64  # a :smoke config (batch 16) sees 4 batches per epoch and 64 eval examples


class _RealDatasetFolder:
  """What ``as_dataset`` needs of MockFs: ``add_file`` makes the dataset folder exist (and it stays)."""

  def __enter__(self):
    return self

  def add_file(self, path):
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)

  def __exit__(self, *exc_info):
    return False


@contextlib.contextmanager
def mock_data():
  with (
    tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE),
    mock.patch.object(test_utils, "MockFs", _RealDatasetFolder),
  ):
    yield

"""Mock data for the tests that train: tfds.testing.mock_data under the real input pipeline.

Every split of every dataset then holds ``NUM_EXAMPLES`` random examples of the dataset's own
features (Fashion-MNIST's 28x28 grey images, ImageNet's variable-size colour ones), read through
the same tf.data code as real data.

Two changes to tfds's mock:

* Its data directory is one fixed path (``/tmp/non-existing/tfds/data_dir``) for every process.
  Two trainers at once (a sweep's ``--parallel=2``, two pytest sessions) then saw each other's
  dataset folder come and go, which the pipeline's damaged-dataset check rightly reports. Here each
  ``mock_data()`` gets a data directory of its own, removed when it ends.
* Inside ``builder.as_dataset`` it redirects the whole process's file system to a temporary folder
  (``tfds.testing.MockFs``), only so that the dataset folder appears to exist. Orbax finishes
  checkpoints on a background thread, and a rename that lands in that window goes to the wrong
  place. Here the folder is really created for the call instead (and removed after).
"""

import contextlib
import os
import shutil
import tempfile
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.testing import test_utils

NUM_EXAMPLES = 64  # a :smoke config (batch 16) sees 4 batches per epoch and 64 eval examples


class _RealDatasetFolder:
  """What ``as_dataset`` needs of MockFs: ``add_file`` makes the dataset folder exist."""

  def __enter__(self):
    self._created = []
    return self

  def add_file(self, path):
    folder = os.path.dirname(os.fspath(path))
    missing = folder
    while not os.path.exists(missing):
      self._created.append(missing)
      missing = os.path.dirname(missing)
    os.makedirs(folder, exist_ok=True)

  def __exit__(self, *exc_info):
    for folder in self._created:  # deepest first
      with contextlib.suppress(OSError):
        os.rmdir(folder)
    return False


@contextlib.contextmanager
def mock_data():
  """Every TFDS dataset mocked, in a data directory that belongs to this call alone."""
  original_init = tfds.core.DatasetBuilder.__init__
  own_dir = tempfile.mkdtemp(prefix="alexnet_jax_mock_tfds_")

  def init_in_own_dir(self, *args, data_dir=None, **kwargs):  # noqa: ARG001 -- the mock ignores it too
    original_init(self, *args, data_dir=own_dir, **kwargs)

  try:
    with (
      tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE),
      mock.patch.object(tfds.core.DatasetBuilder, "__init__", init_in_own_dir),
      mock.patch.object(test_utils, "MockFs", _RealDatasetFolder),
    ):
      yield
  finally:
    shutil.rmtree(own_dir, ignore_errors=True)

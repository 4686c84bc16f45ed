"""Mock data for the tests that train: tfds.testing.mock_data under the real input pipeline.

Every split of every dataset then holds ``NUM_EXAMPLES`` random examples of the dataset's own
features (Fashion-MNIST's 28x28 grey images, ImageNet's variable-size colour ones), read through
the same tf.data code as real data.
"""
import tensorflow_datasets as tfds

NUM_EXAMPLES = 64  # a :smoke config (batch 16) sees 4 batches per epoch and 64 eval examples


def mock_data():
  return tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE)

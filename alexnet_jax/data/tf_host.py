"""TensorFlow for host-side work only (tf.data, TensorBoard events), never on an accelerator.

Every module that needs TensorFlow gets it from :func:`tensorflow`, which hides the GPUs from it
the first time: otherwise TF claims accelerator memory that JAX needs.
"""

from __future__ import annotations

import functools

from absl import logging


@functools.cache
def tensorflow():
  """The ``tensorflow`` module, with its GPUs hidden (once per process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError as error:  # TF already initialised its devices (someone used it first)
    logging.warning("Could not hide GPUs from TensorFlow: %s", error)
  return tf

"""Mock data for tests that train: one place that decides how the input pipeline is faked.

TEMPORARY: until alexnet_jax.input_pipeline lands, :func:`mock_data` installs the in-repo fake
(tests/fake_input_pipeline.py); afterwards it becomes tfds.testing.mock_data over the real one.
"""
import contextlib
import sys

import alexnet_jax


@contextlib.contextmanager
def mock_data():
  import fake_input_pipeline  # pylint: disable=g-import-not-at-top
  saved = sys.modules.get("alexnet_jax.input_pipeline")
  sys.modules["alexnet_jax.input_pipeline"] = fake_input_pipeline
  alexnet_jax.input_pipeline = fake_input_pipeline
  try:
    yield
  finally:
    if saved is None:
      sys.modules.pop("alexnet_jax.input_pipeline", None)
      del alexnet_jax.input_pipeline
    else:
      sys.modules["alexnet_jax.input_pipeline"] = saved
      alexnet_jax.input_pipeline = saved

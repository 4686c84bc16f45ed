"""Shared pytest setup: fake CPU devices for sharding tests, quiet TensorFlow, shared fixtures."""

import os

import pytest

# Must happen before JAX initialises its backend; the sharding tests need several devices.
os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=4"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Tests compile the same small programs many times (one per train_and_evaluate, CLI subprocesses
# included): a persistent compilation cache for the session compiles each of them once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile

  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="alexnet_jax_test_jit_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def pytest_configure(config):
  """A base temporary directory of this session's own (unless --basetemp is given).

  pytest's default (/tmp/pytest-of-USER/pytest-N) deletes all but the newest three, so two pytest
  sessions on one machine (CI beside a developer's run) would delete each other's tmp_path folders
  mid-test; a private folder, removed at exit, cannot be.
  """
  if config.option.basetemp is None:
    import atexit
    import shutil
    import tempfile

    config.option.basetemp = tempfile.mkdtemp(prefix="alexnet_jax_pytest_")
    atexit.register(shutil.rmtree, config.option.basetemp, ignore_errors=True)


@pytest.fixture
def mock_data():
  """Small random datasets as TFDS's default data directory (see mock_inputs.py); yields the loader module."""
  from support import mock_inputs

  with mock_inputs.mock_data():
    from alexnet_jax.data import loader

    yield loader

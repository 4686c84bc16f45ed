"""JAX's persistent compilation cache for every command: a second run compiles nothing it compiled before.

``--compilation_cache=DIR`` chooses the folder (default: ``$JAX_COMPILATION_CACHE_DIR``, else
``$XDG_CACHE_HOME/alexnet_jax/jax_compilation_cache``, i.e. ``~/.cache/...``); ``--compilation_cache=off``
turns it off. A folder that cannot be made is a warning, not a failure: the command compiles as usual.
"""

from __future__ import annotations

import os

import jax
from absl import flags, logging

OFF = "off"
MIN_COMPILE_SECONDS = 0.2  # JAX's default (1 s) would leave predict's and evaluate's programs out

_FLAG = flags.DEFINE_string(
  "compilation_cache",
  None,
  "Folder of JAX's persistent compilation cache (default: $JAX_COMPILATION_CACHE_DIR, else "
  "~/.cache/alexnet_jax/jax_compilation_cache); 'off' turns it off.",
)


def default_dir() -> str:
  cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache_home, "alexnet_jax", "jax_compilation_cache")


def enable() -> str | None:
  """Points JAX at the cache folder the flag (or the environment) names; returns it (None if off)."""
  choice = (_FLAG.value if flags.FLAGS.is_parsed() else None) or os.environ.get("JAX_COMPILATION_CACHE_DIR")
  choice = choice or default_dir()
  if choice == OFF:
    jax.config.update("jax_enable_compilation_cache", False)  # also over $JAX_COMPILATION_CACHE_DIR
    return None
  path = os.path.expanduser(choice)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    logging.warning("No compilation cache: cannot make %s (%s); --compilation_cache=DIR chooses another", path, error)
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path

"""Every failure to load ``--config`` (or a ``--config.FIELD``) as one line, not a traceback.

ml_collections raises plain exceptions for an unknown ``--config.FIELD``, embeds a traceback in the
message of a config file that raised, and defers a file that failed to load until first use.
:func:`parse_flags` is absl's flag parser with those cases turned into one ``FATAL Flags parsing
error`` line (the unknown field's message lists the fields its parent has) and exit status 1.
"""

from __future__ import annotations

import importlib.util
import sys

import ml_collections
from absl import flags

DEFAULT_CONFIG = "experiments/fashion_mnist.py"


def parse_flags(argv):
  """absl's flag parsing, with every config-loading failure reported in one line."""
  try:
    remaining = flags.FLAGS(argv)
    if "config" in flags.FLAGS:  # commands without --config (evaluate, predict, ...) use this parser too
      flags.FLAGS.config.keys()  # a config file that failed to load raises here, not later in training
    return remaining
  except flags.Error as error:
    message = _last_line(error)
  except (AttributeError, KeyError) as error:
    message = f"the config has no field {_innermost_message(error)}{_valid_fields_hint(argv)}"
  except (OSError, ValueError, TypeError) as error:
    message = f"cannot load --config: {_last_line(error)}"
  sys.stderr.write(f"FATAL Flags parsing error: {message}\nPass --helpshort or --helpfull to see help on flags.\n")
  sys.exit(1)


def _innermost_message(error: BaseException) -> str:
  """ml_collections nests its "no such field" KeyError (with a did-you-mean hint) in others."""
  message = error
  while isinstance(message, BaseException) and message.args:
    message = message.args[0]
  return str(message).replace("\n", "; ")


def _valid_fields_hint(argv) -> str:
  """ "; config.model has: a, b, ..." for the first ``--config.X`` whose X the config lacks."""
  try:
    config = _load_config_file(_config_arg(argv))
  except Exception:  # noqa: BLE001 -- only a hint: the one-line error stands without it
    return ""
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    node, path = config, "config"
    for name in arg[len("--config.") :].split("=", 1)[0].split("."):
      if not isinstance(node, ml_collections.ConfigDict):
        break
      if name not in node:
        return f"; {path} has: {', '.join(sorted(node.keys()))}"
      node, path = node[name], f"{path}.{name}"
  return ""


def _config_arg(argv) -> str:
  """The --config file (NAME.py[:variant]) given in ``argv``, or the flag's default."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      return arg[len("--config=") :]
  return DEFAULT_CONFIG


def _load_config_file(spec: str):
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_config_for_hint", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


def _last_line(error: Exception) -> str:
  """The message of an error whose text may embed a traceback (ml_collections does): its last line."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__

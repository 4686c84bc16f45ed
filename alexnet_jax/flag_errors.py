"""Every failure to load ``--config`` (or a ``--config.FIELD``) as one line, not a traceback.

ml_collections raises plain exceptions for an unknown ``--config.FIELD``, embeds a traceback in the
message of a config file that raised, and defers a file that failed to load until first use.
:func:`parse_flags` is absl's flag parser with those cases turned into one ``FATAL Flags parsing
error`` line (the unknown field's message lists the fields its parent has) and exit status 1. The
config file is loaded once before absl sees it: a file that does not import, has no ``get_config``
or whose ``get_config`` raises is reported as that, naming the file, the line and the exception.

Config paths do not depend on the current directory: the default is the repository's
``experiments/fashion_mnist.py``, and a relative ``--config`` missing from the current directory is
looked up in the repository (``--config=experiments/cifar10.py`` works from anywhere).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback

import ml_collections
from absl import flags

from alexnet_jax import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "experiments", "fashion_mnist.py")


class ConfigFileError(errors.UserError):
  """A config file that does not load; the message names the file, the line and the exception."""


def parse_flags(argv):
  """absl's flag parsing, with every config-loading failure reported in one line."""
  try:
    argv = with_config_from_repo(argv)
    if "config" in flags.FLAGS:  # commands without --config (evaluate, predict, ...) use this parser too
      load_config_file(_config_arg(argv))
    remaining = flags.FLAGS(argv)
    if "config" in flags.FLAGS:
      flags.FLAGS.config.keys()  # a config file that failed to load raises here, not later in training
    return remaining
  except ConfigFileError as error:
    message = str(error)
  except flags.Error as error:
    message = _last_line(error)
  except (AttributeError, KeyError) as error:
    message = f"the config has no field {_innermost_message(error)}{_valid_fields_hint(argv)}"
  except (OSError, ValueError, TypeError) as error:
    message = f"cannot load --config: {_last_line(error)}"
  sys.stderr.write(f"FATAL Flags parsing error: {message}\nPass --helpshort or --helpfull to see help on flags.\n")
  sys.exit(1)


def with_config_from_repo(argv: list[str]) -> list[str]:
  """``argv`` with a relative ``--config=FILE[:variant]`` that the current directory lacks but the
  repository holds made the repository's (absolute) path."""
  argv = list(argv)
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      argv[i] = "--config=" + in_repo(arg[len("--config=") :])
    elif arg == "--config" and i + 1 < len(argv):
      argv[i + 1] = in_repo(argv[i + 1])
  return argv


def in_repo(spec: str) -> str:
  """``FILE[:variant]`` with FILE made the repository's when it is relative and missing here."""
  path, colon, variant = spec.partition(":")
  candidate = os.path.join(REPO, path)
  if path and not os.path.isabs(path) and not os.path.exists(path) and os.path.isfile(candidate):
    return candidate + colon + variant
  return spec


def load_config_file(spec: str):
  """The config of ``FILE.py[:variant]`` (``get_config()`` or ``get_config(variant)``, as ml_collections
  calls it); :class:`ConfigFileError` in one line for a file that is missing, does not import, has no
  ``get_config`` or whose ``get_config`` raises."""
  path, _, variant = spec.partition(":")
  module = load_python_file(path, f"--config={spec}")
  if not callable(getattr(module, "get_config", None)):
    raise ConfigFileError(f"--config={spec}: {path} defines no get_config() function")
  try:
    return module.get_config(variant) if variant else module.get_config()
  except Exception as error:  # noqa: BLE001 -- whatever a config file raises is reported in one line
    raise ConfigFileError(f"--config={spec}: its get_config raised {_where(error, path)}") from error


def load_python_file(path: str, flag: str):
  """The module of the Python file ``path`` that ``flag`` named (a config, a sweeps file);
  :class:`ConfigFileError` in one line naming the file, the line and the exception if it does not load."""
  if not os.path.isfile(path):
    raise ConfigFileError(f"{flag}: there is no file {path}")
  try:
    module_spec = importlib.util.spec_from_file_location(f"_{os.path.basename(path).removesuffix('.py')}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  except Exception as error:  # noqa: BLE001 -- whatever the file raises is reported in one line
    raise ConfigFileError(f"{flag} does not load: {_where(error, path)}") from error
  return module


def _where(error: BaseException, path: str) -> str:
  """``FILE, line N: Type: message`` for the innermost line of ``path`` (or of a syntax error) in ``error``."""
  if isinstance(error, SyntaxError) and error.filename:
    return f"{error.filename}, line {error.lineno}: SyntaxError: {error.msg}"
  frames = [
    frame
    for frame in traceback.extract_tb(error.__traceback__)
    if os.path.abspath(frame.filename) == os.path.abspath(path)
  ]
  place = f"{frames[-1].filename}, line {frames[-1].lineno}: " if frames else f"{path}: "
  return place + " ".join(f"{type(error).__name__}: {error}".split())


def _innermost_message(error: BaseException) -> str:
  """ml_collections nests its "no such field" KeyError (with a did-you-mean hint) in others."""
  message = error
  while isinstance(message, BaseException) and message.args:
    message = message.args[0]
  return str(message).replace("\n", "; ")


def _valid_fields_hint(argv) -> str:
  """ "; config.model has: a, b, ..." for the first ``--config.X`` whose X the config lacks."""
  try:
    config = load_config_file(_config_arg(argv))
  except ConfigFileError:  # only a hint: the one-line error stands without it
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
  spec = DEFAULT_CONFIG
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      spec = arg[len("--config=") :]
    elif arg == "--config" and i + 1 < len(argv):
      spec = argv[i + 1]
  return spec


def _last_line(error: Exception) -> str:
  """The message of an error whose text may embed a traceback (ml_collections does): its last line."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__

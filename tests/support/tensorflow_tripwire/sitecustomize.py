"""Put on ``PYTHONPATH`` with ``TENSORFLOW_TRIPWIRE=FILE``: every Python process started from there
(spawned workers and subprocesses included) records each attempt to import TensorFlow in FILE, with
the process and the stack that tried, and gets ImportError (TF stays installed: ``find_spec`` still
finds it, as where it is installed; only executing it is caught). ``tests/test_boundaries.py`` runs
commands this way and requires FILE to stay empty."""

import importlib.abc
import importlib.machinery
import os
import sys
import traceback


class TensorFlowTripwire(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds ``tensorflow`` first; loading it writes the record and fails."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    return importlib.machinery.ModuleSpec(name, self) if name == "tensorflow" else None

  def create_module(self, spec):
    return None

  def exec_module(self, module):
    with open(os.environ["TENSORFLOW_TRIPWIRE"], "a") as record:
      record.write(f"--- process {os.getpid()}, {sys.argv[:2]}, imported tensorflow:\n")
      record.write("".join(traceback.format_stack()[:-1]))
    raise ImportError("tensorflow: imported under tests/support/tensorflow_tripwire")


if os.environ.get("TENSORFLOW_TRIPWIRE"):
  sys.meta_path.insert(0, TensorFlowTripwire())

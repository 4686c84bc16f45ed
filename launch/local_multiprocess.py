"""Runs N copies of a command on this machine as one multi-process JAX run (CPU by default).

Each copy gets ``--coordinator_address=127.0.0.1:<free port> --num_processes=N --process_id=i``
appended (the flags ``alexnet_jax.main`` passes to ``distributed.initialize_distributed``) and,
with ``--cpu_devices_per_process``, that many fake CPU devices. JAX's runtime does the rest:
process 0 hosts the coordinator and the collectives run over gloo. This is how the multi-host
code path is tested without a cluster; on a cluster use launch/slurm.sbatch or launch/tpu_vm.sh.

  python launch/local_multiprocess.py --num_processes=2 --cpu_devices_per_process=2 -- \\
      python -m alexnet_jax.main --workdir=/tmp/mp --config=experiments/fashion_mnist.py:smoke \\
      --config.tower_parallel=2

Exits with the first non-zero exit status of any process (and stops the others), else 0.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time


def free_port() -> int:
  """A TCP port that was free a moment ago on 127.0.0.1 (the coordinator binds it next)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(cpu_devices: int) -> dict:
  """This environment, with ``cpu_devices`` fake CPU devices per process when > 0."""
  env = dict(os.environ)
  if cpu_devices > 0:
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cpu_devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
  return env


def launch(command: list[str], num_processes: int, cpu_devices: int = 0, timeout: float | None = None) -> int:
  """Starts ``num_processes`` copies of ``command`` and waits for all; returns the exit status."""
  address = f"127.0.0.1:{free_port()}"
  env = process_env(cpu_devices)
  procs = [
    subprocess.Popen(
      command + [f"--coordinator_address={address}", f"--num_processes={num_processes}", f"--process_id={i}"], env=env
    )
    for i in range(num_processes)
  ]
  deadline = None if timeout is None else time.monotonic() + timeout
  try:
    while True:
      codes = [p.poll() for p in procs]
      failed = [c for c in codes if c not in (None, 0)]
      if failed:
        return failed[0]
      if all(c == 0 for c in codes):
        return 0
      if deadline is not None and time.monotonic() > deadline:
        print(f"local_multiprocess: timed out after {timeout} s", file=sys.stderr)
        return 124
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.terminate()
        p.wait()


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument(
    "--cpu_devices_per_process",
    type=int,
    default=1,
    help="fake CPU devices per process (0: leave the platform and devices alone)",
  )
  parser.add_argument("--timeout", type=float, default=None, help="seconds before all processes are stopped")
  parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
  args = parser.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command to run after --")
  if args.num_processes < 1:
    parser.error(f"--num_processes={args.num_processes} must be >= 1")
  return launch(command, args.num_processes, args.cpu_devices_per_process, args.timeout)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

"""Joining a multi-process (multi-host) JAX run: JAX's own distributed runtime, nothing home-made.

Every process runs the same program. ``jax.distributed.initialize`` connects them through a
coordinator (process 0), after which ``jax.devices()`` lists every process's devices, one mesh
spans them all and XLA's collectives cross hosts. It must run before anything touches a device.

On SLURM, Open MPI and Cloud TPU VMs JAX finds the coordinator, process count and id by itself; on
Kubernetes it does only with ``jax[k8s]`` installed, a service account allowed to read pods, services
and jobs, and an Indexed Job or JobSet (``launch/k8s/``, docs/scaling_out.md); elsewhere (or to
override) pass them explicitly, as ``launch/local_multiprocess.py`` does.
"""

from __future__ import annotations

import jax
from absl import logging


def initialize_distributed(
  coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
  """Joins the run's other processes; a no-op for a single process outside a cluster.

  Args:
    coordinator_address: "host:port" of process 0 (None: auto-detect).
    num_processes: processes in the run (None: auto-detect; 1: single process, no-op).
    process_id: this process's index in [0, num_processes) (None: auto-detect).

  With all three None, ``jax.distributed.initialize()`` is tried with its cluster detection
  (SLURM, Open MPI, Cloud TPU; Kubernetes with ``jax[k8s]``); if it finds no cluster the run is single-process.
  """
  if num_processes == 1:
    return
  if coordinator_address is None and num_processes is None and process_id is None:
    try:
      jax.distributed.initialize()
    except ValueError as e:  # No cluster environment found: an ordinary single-process run.
      logging.info("Single process run (jax.distributed found no cluster: %s)", e)
      return
  else:
    _check_explicit(coordinator_address, num_processes, process_id)
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  logging.info(
    "Process %d of %d; %d local of %d devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def _check_explicit(coordinator_address, num_processes, process_id) -> None:
  if not coordinator_address or ":" not in coordinator_address:
    raise ValueError(f"flag coordinator_address={coordinator_address!r} must be 'host:port' of process 0")
  if num_processes is None or num_processes < 1:
    raise ValueError(f"flag num_processes={num_processes!r} must be an integer >= 1")
  if process_id is None or not 0 <= process_id < num_processes:
    raise ValueError(f"flag process_id={process_id!r} must be in [0, num_processes={num_processes})")


def is_main_process() -> bool:
  """True on process 0, the one that writes TensorBoard events, summaries and logs."""
  return jax.process_index() == 0

"""Timing a stream of batches: images per second and CPU time per image, with no flags of its own.

``benchmark_input`` (whose module defines absl flags at import) and ``gpu_check`` both time the loader
with it; keeping it here lets any module import it without those flags.
"""

from __future__ import annotations

import time


def time_batches(batches, steps: int, batch_size: int) -> tuple[float, float]:
  """(images/s, CPU-microseconds per image) over the next ``steps`` batches of ``batches``."""
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(steps):
    next(batches)
  images = steps * batch_size
  return images / (time.perf_counter() - start), 1e6 * (time.process_time() - cpu_start) / images

"""The benchmark's PyTorch side: ``torch_alexnet.TorchAlexNet`` trained by plain SGD with momentum.

It runs on the device type JAX runs on, with the JAX side's SGD hyper-parameters, under
``torch.compile`` unless told otherwise (eager PyTorch when compilation fails: a machine without a
C++/Triton toolchain still gets a number), with channels-last memory where asked (by default on CUDA
only). On CUDA it uses TF32 for float32 convolutions and matmuls, as JAX does by default there.
PyTorch is imported only when this side is built, so ``--no_torch`` runs where it is missing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from alexnet_jax.yardsticks.benchmark_jax import LEARNING_RATE, MOMENTUM, WEIGHT_DECAY
from alexnet_jax.yardsticks.benchmark_report import Side


def build_torch_side(
  model_options: dict[str, Any],
  images: np.ndarray,
  labels: np.ndarray,
  *,
  dtype: str,
  compile_mode: str,
  channels_last_mode: str,
) -> tuple[Side, Callable[[], None], dict[str, Any], Callable[[], float | None]]:
  """Builds the reference step on ``TorchAlexNet(**model_options)``.

  ``compile_mode`` is "on" or "off" (``--torch_compile``), ``channels_last_mode`` "auto", "on" or "off"
  (``--torch_channels_last``). Returns the Side (its compile time measured), a function running one step,
  what ran (versions, device, compile, memory format, threads) and a function reading the peak
  device memory (None on CPU, where the caller reads the process's RSS).
  """
  import torch  # pylint: disable=g-import-not-at-top -- only this side needs PyTorch

  from alexnet_jax.yardsticks import torch_alexnet  # pylint: disable=g-import-not-at-top -- imports torch

  on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
  device = torch.device("cuda" if on_gpu else "cpu")
  channels_last = channels_last_mode == "on" or (channels_last_mode == "auto" and on_gpu)
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  if on_gpu:
    # Match JAX's default float32 precision on GPU (TF32 tensor cores for convs and matmuls).
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True
  torch.manual_seed(0)
  model = torch_alexnet.TorchAlexNet(**model_options).to(device, memory_format=memory_format)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, memory_format=memory_format)
  y = torch.from_numpy(labels).long().to(device)
  make_step = step_maker(model, x, y, bfloat16=dtype == "bfloat16", synchronize=on_gpu)
  if on_gpu:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
  run_one, compiled, compile_s = first_step(make_step, model, compile_mode == "on")
  info = {
    "torch_version": torch.__version__,
    "torch_device": str(device),
    "torch_compile": compiled,
    "torch_channels_last": channels_last,
    "torch_threads": torch.get_num_threads(),
  }

  def peak_memory_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None

  return Side("torch", compile_s=compile_s), run_one, info, peak_memory_mb


def step_maker(model, x, y, *, bfloat16: bool, synchronize: bool) -> Callable[[Callable], Callable[[], None]]:
  """``make_step(forward)``: a function running one SGD step of ``model`` through ``forward`` on (x, y).

  ``bfloat16`` runs the forward pass under autocast (float32 master weights, as the JAX side);
  ``synchronize`` waits for the GPU, so that a step's time is its own.
  """
  import torch  # pylint: disable=g-import-not-at-top -- only this side needs PyTorch

  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
  autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bfloat16)

  def make_step(forward: Callable) -> Callable[[], None]:
    def run_one() -> None:
      optimizer.zero_grad(set_to_none=True)
      with autocast:
        logits = forward(x)
      loss = torch.nn.functional.cross_entropy(logits.float(), y)
      loss.backward()
      optimizer.step()
      if synchronize:
        torch.cuda.synchronize()

    return run_one

  return make_step


def first_step(make_step: Callable, model, use_compile: bool) -> tuple[Callable[[], None], bool, float]:
  """Runs the first step (under ``torch.compile`` it traces and compiles); returns the step function,
  whether it is compiled, and the seconds the first step took."""
  import torch  # pylint: disable=g-import-not-at-top -- only this side needs PyTorch

  run_one = make_step(torch.compile(model) if use_compile else model)
  start = time.perf_counter()
  try:
    run_one()
  except Exception as error:  # pylint: disable=broad-except
    if not use_compile:
      raise
    # torch.compile needs a working C++/Triton toolchain; time eager PyTorch rather than nothing.
    print(f"torch.compile failed, timing eager PyTorch: {type(error).__name__}: {error}", file=sys.stderr)
    use_compile, run_one = False, make_step(model)
    start = time.perf_counter()
    run_one()
  return run_one, use_compile, time.perf_counter() - start

"""The references' learning-rate rules, written from their own sources in plain Python: the tests hold the
code's schedules against these, not against the configs' numbers."""


def cuda_convnet2_dexp(base: float, target_factor: float, num_steps: int, progress: float) -> float:
  """cuda-convnet2 ``cudaconvnet/src/lr.cu`` ``DiscreteExpParameterSchedule``: the constructor fills
  ``rates[i] = base * (1 / tgtFactor) ** (i / (numSteps - 1))`` for ``i < numSteps - 1`` and appends
  ``base / tgtFactor``; ``getValue(progress)`` returns the first ``rates[i]`` with ``progress <= (i + 1) /
  numSteps``, the last one past the end."""
  rates = [base * (1 / target_factor) ** (i / (num_steps - 1)) for i in range(num_steps - 1)]
  rates.append(base / target_factor)
  for i, rate in enumerate(rates):
    if progress <= (i + 1) / len(rates):
      return rate
  return rates[-1]


def caffe_step(base_lr: float, gamma: float, stepsize: int, iteration: int) -> float:
  """Caffe ``sgd_solver.cpp`` ``GetLearningRate``, ``lr_policy: "step"``: ``base_lr * gamma ^ floor(iter /
  stepsize)``."""
  return base_lr * gamma ** (iteration // stepsize)

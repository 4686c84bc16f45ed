"""``--config.profile_steps=A:B``: a jax.profiler trace of train steps A..B-1 that TensorBoard's profile tab reads."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import pytest
from support import mock_inputs

from alexnet_jax.train import loop, profiling, run_dir, validation
from experiments import fashion_mnist


def _trace_files(logdir):
  """The profile plugin's layout: LOGDIR/plugins/profile/<run>/<host>.xplane.pb."""
  return glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))


def _event_names_and_steps(path):
  """Every event name in the trace, and the step_num of each "train" step annotation, in order."""
  # The XSpace proto ships with TensorFlow: a test-only reference reader (requirements-test.txt).
  xplane_pb2 = pytest.importorskip("tensorflow.tsl.profiler.protobuf.xplane_pb2")

  with open(path, "rb") as f:
    space = xplane_pb2.XSpace.FromString(f.read())
  names, steps = set(), []
  for plane in space.planes:
    event_names = {key: meta.name for key, meta in plane.event_metadata.items()}
    stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
    names |= set(event_names.values())
    for line in plane.lines:
      for event in line.events:
        if event_names[event.metadata_id] == profiling.STEP_NAME:
          steps += [s.int64_value for s in event.stats if stat_names[s.metadata_id] == "step_num"]
  return names, steps


@pytest.fixture
def mock_data():
  with mock_inputs.mock_data():
    yield


@pytest.mark.slow
def test_training_traces_the_window_of_train_steps_into_the_workdir(mock_data, tmp_path):
  config = fashion_mnist.get_config("smoke")  # trains 4 steps
  config.profile_steps = "2:4"
  summary = loop.train_and_evaluate(config, str(tmp_path))
  assert summary["step"] == 4
  (trace,) = _trace_files(tmp_path / "profile")
  names, steps = _event_names_and_steps(trace)
  assert steps == [2, 3]  # steps 2 and 3: the window is half-open, and step 1 (compilation) is left out
  assert any("jit_train_step" in name for name in names)  # the device side of the jitted train_step


def _steps(profiler, numbers, fn, x):
  for number in numbers:
    with profiler.step(number):
      x = fn(x)
    profiler.after_step(number, x)
  return x


@pytest.mark.parametrize(
  "window,last_step,trained,expected",
  [
    ("2:4", 10, range(1, 6), [2, 3]),
    ("2:9", 3, range(1, 4), [2, 3]),  # the run ends inside the window: traced up to its last step
    ("2:5", 10, range(4, 7), [4]),  # resumed inside the window: traced from the first step trained
  ],
)
def test_the_trace_holds_the_window_steps_trained(tmp_path, window, last_step, trained, expected):
  fn = jax.jit(lambda x: x * 2.0 + 1.0)
  with profiling.StepProfiler(window, str(tmp_path), last_step=last_step) as profiler:
    _steps(profiler, trained, fn, jnp.ones(8))
  (trace,) = _trace_files(tmp_path)
  assert _event_names_and_steps(trace)[1] == expected


def test_an_error_inside_the_window_stops_the_trace_and_writes_it(tmp_path):
  fn = jax.jit(lambda x: x + 1.0)
  with pytest.raises(KeyboardInterrupt):
    with profiling.StepProfiler("2:6", str(tmp_path / "first"), last_step=10) as profiler:
      _steps(profiler, (1, 2, 3), fn, jnp.ones(8))
      raise KeyboardInterrupt  # a preemption or a crash at step 3 of the window
  (trace,) = _trace_files(tmp_path / "first")
  assert _event_names_and_steps(trace)[1] == [2, 3]
  jax.profiler.start_trace(str(tmp_path / "second"))  # raises if the first trace were still running
  jax.profiler.stop_trace()


def test_no_window_traces_nothing(tmp_path):
  with profiling.StepProfiler("", str(tmp_path), last_step=3) as profiler:
    _steps(profiler, (1, 2, 3), jax.jit(lambda x: x + 1.0), jnp.ones(8))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("value", ["1:1", "3:2", "0:2", "2", "2:", ":4", "a:b", "2:4:6", " 2:4", "-1:3", 24, None])
def test_a_bad_window_is_one_error_naming_the_field(value):
  config = fashion_mnist.get_config("smoke").to_dict()
  config["profile_steps"] = value
  with pytest.raises(validation.ConfigError) as error:
    validation.validate(config, device_count=4)
  problem = str(error.value).removeprefix("invalid config: ")
  assert problem.startswith(f"config.profile_steps={value!r} is not allowed: expected") and "; " not in problem


@pytest.mark.parametrize("value", ["", "1:2", "2:4", "100:110"])
def test_good_windows_are_accepted(value):
  config = fashion_mnist.get_config("smoke")
  config.profile_steps = value
  validation.validate(config, device_count=4)


def test_a_run_can_be_resumed_with_another_profile_window(tmp_path):
  config = json.loads(fashion_mnist.get_config("smoke").to_json_best_effort())  # as the loop records it
  run_dir.prepare(str(tmp_path), config, allow_config_change=False)
  run_dir.prepare(str(tmp_path), config | {"profile_steps": "2:4"}, allow_config_change=False)
  with pytest.raises(run_dir.WorkdirError, match="seed: 0 in the workdir, 1 now"):
    run_dir.prepare(str(tmp_path), config | {"profile_steps": "2:4", "seed": 1}, allow_config_change=False)

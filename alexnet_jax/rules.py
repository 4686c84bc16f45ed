"""The predicates every option check is written with, shared by the config validator and the model.

A :class:`Rule` names one option, a predicate, and the words that say what is allowed. The model
checks its own keyword arguments with these rules (``alexnet_jax/model/alexnet.py``); a config is
checked with :func:`check_config`: every field's rule, then the checks between fields, in one
:class:`ConfigError` (``train/validation.py`` runs every package's; ``prepare_store`` the data's).
The bottom layer of the package: pure Python, importing it pulls in no framework.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from alexnet_jax import errors


class ConfigError(errors.UserError, ValueError):
  """A config value the user can fix; the message names the field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """``<field>`` must satisfy ``check``; ``expected`` says what that means."""

  field: str
  check: Callable[[Any], bool]
  expected: str

  def problem(self, value: Any, prefix: str = "") -> str | None:
    """None if ``value`` is allowed, else "PREFIXfield=value is not allowed: expected ..."."""
    try:
      ok = bool(self.check(value))
    except (TypeError, ValueError):
      ok = False
    return None if ok else f"{prefix}{self.field}={value!r} is not allowed: expected {self.expected}"


class OptionError(errors.UserError, ValueError):
  """Options that break their rules; ``problems`` holds (option, value, expected) for each."""

  def __init__(self, owner: str, problems: list[tuple[str, Any, str]]):
    self.problems = problems
    super().__init__(
      "; ".join(
        f"{owner} option {name}={value!r} is not allowed: expected {expected}" for name, value, expected in problems
      )
    )


def check_options(owner: str, rules: Iterable[Rule], values: Mapping[str, Any]) -> None:
  """Raises :class:`OptionError` listing every rule of ``rules`` that ``values`` breaks."""
  problems = [
    (rule.field, values[rule.field], rule.expected) for rule in rules if rule.problem(values[rule.field]) is not None
  ]
  if problems:
    raise OptionError(owner, problems)


# A check between fields: (config, device count) -> None, or the problem in one line.
CrossCheck = Callable[[Any, int], "str | None"]


def check_config(config, field_rules: Iterable[Rule], cross_checks: Iterable[CrossCheck] = (), device_count: int = 1):
  """Raises :class:`ConfigError` listing every rule of ``field_rules`` that ``config`` breaks (a missing
  field too); when every field is there and allowed, every problem that ``cross_checks`` find instead
  (they assume well-typed fields). Returns None if ``config`` is fine."""
  errors = []
  for rule in field_rules:
    try:
      value = lookup(config, rule.field)
    except KeyError:
      errors.append(f"config.{rule.field} is missing")
      continue
    if not rule.check(value):
      errors.append(f"config.{rule.field}={value!r} is not allowed: expected {rule.expected}")
  if not errors:
    errors = [message for check in cross_checks if (message := check(config, device_count))]
  if errors:
    raise ConfigError("invalid config: " + "; ".join(errors))  # one line, every problem


def lookup(config, dotted: str):
  """``config``'s value at the dotted field name; KeyError if it has none."""
  value = config
  for key in dotted.split("."):
    if key not in value:
      raise KeyError(dotted)
    value = value[key]
  return value


def one_of(field: str, allowed) -> Rule:
  allowed = tuple(allowed)
  return Rule(field, lambda value: _hashable(value) and value in allowed, f"one of {allowed}")


def integer(field: str, minimum: int, maximum: int | None = None) -> Rule:
  if maximum is None:
    return Rule(field, lambda value: is_int(value) and value >= minimum, f"an integer >= {minimum}")
  return Rule(
    field, lambda value: is_int(value) and minimum <= value <= maximum, f"an integer in [{minimum}, {maximum}]"
  )


def odd_integer(field: str) -> Rule:
  return Rule(
    field,
    lambda v: is_int(v) and v >= 1 and v % 2 == 1,
    "a positive odd integer (the window is centred on its element)",
  )


def number(field: str, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = True) -> Rule:
  """A real number in the interval from ``low`` to ``high`` (open or closed at either end)."""

  def check(value):
    if not is_number(value):
      return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below

  interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
  return Rule(field, check, f"a number in {interval}")


def boolean(field: str) -> Rule:
  return Rule(field, lambda value: isinstance(value, bool), "True or False")


def string(field: str, *, empty_ok: bool) -> Rule:
  expected = 'a string ("" for the default)' if empty_ok else "a non-empty string"
  return Rule(field, lambda value: isinstance(value, str) and (empty_ok or bool(value)), expected)


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _hashable(value) -> bool:
  try:
    hash(value)
  except TypeError:
    return False
  return True

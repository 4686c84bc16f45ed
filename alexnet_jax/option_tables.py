"""The one way a config field is declared: :class:`Option` (its rule, default, meaning, and since when
it exists), and what a table of them gives.

Each section of a run's config is a table of options in the package that implements it
(``model/options.py``, ``data/input_options.py``, ``train/options.py``, ``parallel/options.py``); the
validator's field rules, the configs' starting values, docs/configuration.md's tables and the values
of runs recorded before a field existed all come from those tables. Pure Python: importing it pulls in
no framework (ml_collections only when a config section is built).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from alexnet_jax import rules

if TYPE_CHECKING:  # the model and the benchmark import option tables; they run without ml_collections
  import ml_collections


class _AsDefault:
  """The marker of an :class:`Option` whose runs before ``since`` trained with its default."""

  def __repr__(self) -> str:
    return "AS_DEFAULT"


AS_DEFAULT = _AsDefault()


@dataclasses.dataclass(frozen=True)
class Option:
  """One option: ``rule`` names it and says what it allows; ``default`` is the paper's value.

  ``since`` ("DATE COMMIT") marks an option added after runs began recording their config (2026-11-27
  8e1fe69): a run recorded before it trained with ``before`` -- the default unless given, since an
  option is usually added with the old behaviour as its default (biases were decayed before
  ``optimizer.decay_biases``, whose paper value is False).
  """

  rule: rules.Rule
  default: Any
  meaning: str
  since: str | None = None
  before: Any = AS_DEFAULT

  @property
  def name(self) -> str:
    return self.rule.field

  @property
  def value_before(self) -> Any:
    """What a run recorded before ``since`` trained with."""
    return self.default if self.before is AS_DEFAULT else self.before


def prefixed(prefix: str, option: Option) -> Option:
  """``option`` with ``prefix`` before its name (the LRN layer's ``size`` as AlexNet's ``lrn_size``)."""
  return dataclasses.replace(option, rule=dataclasses.replace(option.rule, field=prefix + option.name))


def field_rules(options: Iterable[Option], prefix: str = "") -> tuple[rules.Rule, ...]:
  """The options' rules under their config section (``prefix``: ``"input."``, or ``""`` at the top)."""
  return tuple(prefixed(prefix, option).rule for option in options)


def defaults(options: Iterable[Option]) -> dict[str, Any]:
  """Every option's name -> its default, in the table's order."""
  return {option.name: option.default for option in options}


def section_config(options: Iterable[Option]) -> ml_collections.ConfigDict:
  """A config section with every option at its default; a config then sets what differs."""
  import ml_collections  # pylint: disable=g-import-not-at-top -- only configs call this

  return ml_collections.ConfigDict(defaults(options))


def format_value(value: Any) -> str:
  """A value as a Markdown cell: strings quoted in code, anything else as Python writes it."""
  return f'`"{value}"`' if isinstance(value, str) else repr(value)

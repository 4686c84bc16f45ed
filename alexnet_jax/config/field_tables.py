"""docs/configuration.md's tables of config fields, generated from the option tables
(``train/run_config.py``: every field declared once). ``python -m alexnet_jax.config.field_tables``
prints them; ``tests/test_docs.py`` keeps the page equal to them. The model's options have their own
table (``python -m alexnet_jax.model.options``)."""

from __future__ import annotations

from alexnet_jax import option_tables
from alexnet_jax.data import input_options
from alexnet_jax.parallel import options as parallel_options
from alexnet_jax.train import options as train_options

# The page's tables: heading -> the (section prefix, options) it lists, in the configs' order.
TABLES = {
  "The run": (("", train_options.RUN_OPTIONS),),
  "The data": (("", input_options.DATA_OPTIONS), ("input.", input_options.INPUT_OPTIONS)),
  "The optimizer and the learning rate": (
    ("optimizer.", train_options.OPTIMIZER_OPTIONS),
    ("schedule.", train_options.SCHEDULE_OPTIONS),
  ),
  "Parallelism": (("", parallel_options.OPTIONS),),
}


def markdown_table(sections) -> str:
  """One row per field of ``sections``: its dotted name, the paper's value, its meaning."""
  rows = ["| field | default (the paper) | meaning |", "| --- | --- | --- |"]
  for prefix, options in sections:
    for option in options:
      rows.append(f"| `{prefix}{option.name}` | {option_tables.format_value(option.default)} | {option.meaning} |")
  return "\n".join(rows)


if __name__ == "__main__":
  for heading, sections in TABLES.items():
    print(f"{heading}:\n\n{markdown_table(sections)}\n")

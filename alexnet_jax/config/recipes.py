"""The three ImageNet recipes side by side: ``python -m alexnet_jax.config.recipes`` prints, as a
Markdown table, every config field on which the paper's recipe (``experiments/imagenet2012.py``),
its ``:cuda_convnet2`` variant and its ``:caffe`` variant differ.

The table is computed from the configs, so what the docs show (docs/paper_and_references.md holds
this output; a test keeps the two equal) is what the code trains. Each variant's fields carry their
source (file and setting) as a comment in ``experiments/imagenet2012.py``.
"""

from __future__ import annotations

import numbers

from alexnet_jax import flag_errors, utils

# The config file the columns are variants of, loaded as --config loads it (the library imports no config).
CONFIG_FILE = "experiments/imagenet2012.py"
# (column heading, config variant) in the order of the table's columns.
COLUMNS = (("paper", None), ("cuda-convnet2", "cuda_convnet2"), ("Caffe bvlc_alexnet", "caffe"))
ABSENT = "(no field)"


def recipe_configs() -> dict[str, dict]:
  """Each column's config as a flat {dotted field: value} dict."""
  path = flag_errors.in_repo(CONFIG_FILE)
  return {
    heading: utils.flatten(flag_errors.load_config_file(f"{path}:{variant}" if variant else path).to_dict())
    for heading, variant in COLUMNS
  }


def differences(configs: dict[str, dict]) -> list[tuple[str, list]]:
  """(field, one value per config) for every field whose values are not all equal, in the first
  config's field order (fields only some configs have come last); a missing field is :data:`ABSENT`."""
  fields = list(dict.fromkeys(field for flat in configs.values() for field in flat))
  rows = [(field, [flat.get(field, ABSENT) for flat in configs.values()]) for field in fields]
  return [(field, values) for field, values in rows if any(value != values[0] for value in values)]


def format_value(value) -> str:
  """A config value as a table cell: numbers to 4 significant digits, strings quoted."""
  if isinstance(value, bool) or value == ABSENT:
    return str(value)
  if isinstance(value, numbers.Integral):
    return str(value)
  if isinstance(value, numbers.Real):
    return f"{value:.4g}"
  if isinstance(value, (tuple, list)):
    return "(" + ", ".join(format_value(item) for item in value) + ")"
  return f'"{value}"' if isinstance(value, str) else str(value)


def markdown_table(configs: dict[str, dict] | None = None) -> str:
  """The differences as a Markdown table: one row per field, one column per recipe."""
  configs = recipe_configs() if configs is None else configs
  lines = ["| field | " + " | ".join(configs) + " |", "| --- |" + " --- |" * len(configs)]
  for field, values in differences(configs):
    lines.append(f"| `{field}` | " + " | ".join(format_value(value) for value in values) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  print(markdown_table())

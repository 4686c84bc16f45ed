"""The documentation cannot rot: everything it names in the repository exists.

Reads README.md, docs/*.md, experiments/README.md and benchmarks/README.md and checks that

- every ``python -m X`` of this repository's own packages names a module (``importlib.util.find_spec``);
- every dotted name ``alexnet_jax.a.b`` resolves to a module, or to a top-level name of a module (a
  class, function or assignment, read with ``ast``: nothing heavy is imported), and a method or
  attribute of such a class;
- every short ``module.name`` in code (``augment.eval_views``, ``sharding.create_mesh``) whose first
  part is one of the package's module files names something that module defines;
- every repository path in code spans, code blocks and links exists (``alexnet_jax/data/loader.py``,
  ``model/layers.py``, ``benchmarks/results/...``; run outputs, placeholders and absolute paths are
  not the repository's), and every ``#anchor`` of a link to a Markdown file names one of its headings;
- every config field (``--config.model.lrn``, ``config.input.eval_crops``, ``model.in_channels``)
  exists in the config of ``experiments/imagenet2012.py`` or ``experiments/fashion_mnist.py``;
- every paragraph's backticks pair up (else the spans above would be read wrongly);
- README.md stays a front page (at most 250 lines) and links every page under docs/;
- every command the docs name (``python -m alexnet_jax.X``, ``python launch/X.py``) has a ``--help``
  that names only modules, names and files that exist (all of them run in one process: slow).

A section whose heading contains "history" is a record of code that no longer exists: only its
links are checked. A failure lists every stale reference as ``FILE:LINE: what``. The last test
plants stale names in a made-up page and checks that each one is reported, so this file can fail.
"""

from __future__ import annotations

import ast
import functools
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "alexnet_jax"
# The repository's own top-level packages: `python -m` of anything else is not checked.
OWN_PACKAGES = (PACKAGE, "experiments", "launch", "tests")
# Top-level entries a path may start with; such a path must exist from the repository root.
ROOT_ENTRIES = ("alexnet_jax", "experiments", "launch", "tests", "benchmarks", "docs")
# Not this repository's files: run directories.
IGNORED_PREFIXES = ("runs/",)
# Extensions of files a path without a known top-level folder must name to be checked.
FILE_EXTENSIONS = (".py", ".sh", ".sbatch", ".md", ".jsonl", ".png", ".toml", ".cfg")
# Bare file names (no folder) checked against the repository: code only (others are run outputs).
BARE_EXTENSIONS = (".py", ".sh", ".sbatch")
# Words after a dot that make a file name, not an attribute (`summary.json`, `train.log`).
NOT_ATTRIBUTES = frozenset("py json jsonl md png txt log npz pt pb cfg sh sbatch toml lock gz tar".split())
# Config sections a field may be named by without the leading `config.`.
CONFIG_SECTIONS = ("input", "model", "optimizer", "schedule")
# Fields the docs name on purpose although they do not exist: the example of a misspelt flag.
KNOWN_WRONG_FIELDS = frozenset({"model.widht"})


def doc_files() -> list[str]:
  """The documentation, as paths relative to the repository root."""
  paths = ["README.md", "experiments/README.md", "benchmarks/README.md"]
  paths += sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
  return [p for p in paths if os.path.isfile(os.path.join(REPO, p))]


# --- reading Markdown ------------------------------------------------------------------------------


class Page:
  """A Markdown page split into what the checks read: code (spans and blocks), links, headings."""

  def __init__(self, text: str, name: str):
    self.name, self.text = name, text
    lines = text.split("\n")
    prose, self.code, self.headings = [], [], []
    # Lines of sections whose heading says "history": a record of code that no longer exists.
    self.history: set[int] = set()
    fenced, history_level = False, 0
    for number, line in enumerate(lines, 1):
      heading = None if fenced else re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
      if heading:
        self.headings.append(heading.group(2))
        level = len(heading.group(1))
        if history_level and level <= history_level:
          history_level = 0
        if not history_level and "history" in heading.group(2).lower():
          history_level = level
      if history_level:
        self.history.add(number)
      if line.lstrip().startswith("```"):
        fenced = not fenced
        prose.append("")
      elif fenced:
        self.code.append((number, line))
        prose.append("")
      else:
        prose.append(line)
    self.prose = "\n".join(prose)
    # A paragraph with an odd number of backticks would pair every later span wrongly.
    self.unpaired = [
      self.line_of(self.prose, m.end() - len(m.group(0).lstrip()))
      for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", self.prose)
      if m.group(0).count("`") % 2
    ]
    # Inline code spans may run over a line break (not a blank line); each part keeps its own line.
    for span in re.finditer(r"`((?:[^`\n]|\n(?!\s*\n))+)`", self.prose):
      start = self.line_of(self.prose, span.start(1))
      for offset, part in enumerate(span.group(1).split("\n")):
        self.code.append((start + offset, part))
    self.links = [
      (self.line_of(self.prose, m.start(1)), m.group(1))
      for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", self.prose)
    ]

  @staticmethod
  def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1

  def everywhere(self, pattern: str):
    """(line, match) of a pattern over the whole page, prose and code alike."""
    for m in re.finditer(pattern, self.text):
      yield self.line_of(self.text, m.start()), m


def anchor(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def anchors_of(path: str) -> frozenset[str]:
  with open(path, encoding="utf-8") as f:
    return anchors(Page(f.read(), path).headings)


def anchors(headings: list[str]) -> frozenset[str]:
  """The anchors of a page's headings (a repeated heading's second anchor ends in -1)."""
  seen: dict[str, int] = {}
  result = set()
  for heading in headings:
    slug = anchor(heading)
    result.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
    seen[slug] = seen.get(slug, 0) + 1
  return frozenset(result)


# --- the repository as the checks see it ------------------------------------------------------------


@functools.cache
def repo_files() -> frozenset[str]:
  """Every file and folder of the checkout (relative paths), build outputs and run folders left out."""
  found = set()
  for root, dirs, files in os.walk(REPO):
    rel = os.path.relpath(root, REPO)
    skipped = ("__pycache__", "runs", "data") if rel == "." else ("__pycache__",)
    dirs[:] = [d for d in dirs if not d.startswith(".") and d not in skipped]
    for name in dirs + files:
      found.add(os.path.normpath(os.path.join(rel, name)))
  return frozenset(found)


def module_file(dotted: str) -> str | None:
  """The source file of a module or package of the repository, or None."""
  base = os.path.join(REPO, *dotted.split("."))
  for candidate in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(candidate):
      return candidate
  return None


@functools.cache
def top_level(path: str) -> dict[str, ast.AST]:
  """The names a module defines at its top level (definitions, assignments, imports)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names: dict[str, ast.AST] = {}
  collect_names(tree.body, names)
  return names


def collect_names(body: list[ast.stmt], names: dict[str, ast.AST]) -> None:
  for node in body:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
      names[node.name] = node
    elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      for target in targets:
        for name in ast.walk(target):
          if isinstance(name, ast.Name):
            names[name.id] = node
    elif isinstance(node, ast.Import | ast.ImportFrom):
      for alias in node.names:
        names[(alias.asname or alias.name).split(".")[0]] = node
    elif isinstance(node, ast.If | ast.Try | ast.With):
      for block in (getattr(node, "body", []), getattr(node, "orelse", []), getattr(node, "finalbody", [])):
        collect_names(block, names)


def resolve(dotted: str) -> str | None:
  """None if ``dotted`` names a module or something a module defines, else what is missing."""
  parts = dotted.split(".")
  for i in range(len(parts), 0, -1):
    path = module_file(".".join(parts[:i]))
    if path:
      break
  else:
    return f"no module {parts[0]!r}"
  rest = parts[i:]
  if not rest:
    return None
  names = top_level(path)
  if rest[0] not in names:
    return f"{'.'.join(parts[:i])} has no {rest[0]!r}"
  node = names[rest[0]]
  if len(rest) > 1 and isinstance(node, ast.ClassDef):
    members: dict[str, ast.AST] = {}
    collect_names(node.body, members)
    if rest[1] not in members:
      return f"{'.'.join(parts[: i + 1])} has no {rest[1]!r}"
  return None


@functools.cache
def module_basenames() -> dict[str, tuple[str, ...]]:
  """Each module file's short name (``augment``) -> its dotted names (``alexnet_jax.data.augment``)."""
  found: dict[str, list[str]] = {}
  for root, dirs, files in os.walk(os.path.join(REPO, PACKAGE)):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
      if name.endswith(".py") and name != "__init__.py":
        dotted = os.path.relpath(os.path.join(root, name[:-3]), REPO).replace(os.sep, ".")
        found.setdefault(name[:-3], []).append(dotted)
  return {name: tuple(dotted) for name, dotted in found.items()}


@functools.cache
def config_trees() -> tuple:
  """The configs every documented field must be in (experiments import only ml_collections)."""
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  from experiments import fashion_mnist, imagenet2012

  return imagenet2012.get_config(), fashion_mnist.get_config()


def has_field(field: str) -> bool:
  for config in config_trees():
    node = config
    for part in field.split("."):
      if not hasattr(node, "keys") or part not in node.keys():
        break
      node = node[part]
    else:
      return True
  return False


def module_exists(dotted: str) -> bool:
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  try:
    return importlib.util.find_spec(dotted) is not None
  except ModuleNotFoundError:
    return False


# --- the checks -------------------------------------------------------------------------------------


def check_modules(page: Page) -> list[tuple[int, str]]:
  """`python -m X` of the repository's own packages."""
  problems = []
  for line, m in page.everywhere(r"python3? -m ([A-Za-z_][\w.]*)"):
    module = m.group(1).rstrip(".")
    if module.split(".")[0] in OWN_PACKAGES and not module_exists(module):
      problems.append((line, f"`python -m {module}`: no such module"))
  return problems


def check_dotted_names(page: Page) -> list[tuple[int, str]]:
  """`alexnet_jax.x.y` anywhere, and `module.name` in code for the package's module files."""
  problems = []
  for line, m in page.everywhere(rf"(?<![\w./-]){PACKAGE}(?:\.[A-Za-z_]\w*)+"):
    missing = resolve(m.group(0))
    if missing:
      problems.append((line, f"{m.group(0)}: {missing}"))
  short = module_basenames()
  for line, code in page.code:
    for m in re.finditer(r"(?<![\w./-])([a-z_]\w*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", code):
      module, attr, member = m.groups()
      if module not in short or attr in NOT_ATTRIBUTES:
        continue
      failures = [resolve(".".join(p for p in (dotted, attr, member) if p)) for dotted in short[module]]
      if all(failures):
        problems.append((line, f"{m.group(0)}: {failures[0]}"))
  return problems


def path_problem(path: str, page_dir: str, *, link: bool = False) -> str | None:
  """None if ``path`` names something of the repository (or is not the repository's), else why."""
  path = path.split("#")[0].rstrip("/")
  if not path:
    return None
  norm = os.path.normpath(path)
  first = norm.split(os.sep)[0]
  if link:
    candidates = [os.path.normpath(os.path.join(page_dir, path))]
  elif first in ROOT_ENTRIES:
    candidates = [norm]
  elif "/" in path or path.endswith(BARE_EXTENSIONS):
    if not path.endswith(FILE_EXTENSIONS if "/" in path else BARE_EXTENSIONS):
      return None  # a folder of a run (`checkpoints/unreadable/`), not the repository's
    candidates = [os.path.normpath(os.path.join(page_dir, path)), os.path.join(PACKAGE, norm)]
    candidates += [f for f in repo_files() if f == norm or f.endswith(os.sep + norm)]
  else:
    return None
  if any(c in repo_files() for c in candidates):
    return None
  return f"{path}: no such file or folder in the repository"


def path_candidates(code: str):
  """Words of a code span or line that look like repository paths."""
  for word in code.split():
    if any(c in word for c in "<{*$") or "..." in word or "://" in word:
      continue
    for part in re.split(r"[=,;()\"'\[\]|]", word):
      part = part.split(":")[0].strip(".`-")
      if not part or part.startswith(("/", "~", "-")) or part.startswith(IGNORED_PREFIXES):
        continue
      head = part.split("/")[0]
      if head.isupper() or head.upper() in ("W", "DIR", "OUT", "WORKDIR", "DATA_DIR"):
        continue  # a placeholder: WORKDIR/..., DIR/..., NAME.py
      if head.split(".")[0].isupper():
        continue
      if "/" in part or part.endswith(BARE_EXTENSIONS):
        yield part


def check_paths(page: Page) -> list[tuple[int, str]]:
  """Paths in code spans and blocks, and link targets (with their anchors)."""
  page_dir = os.path.dirname(page.name)
  problems = []
  for line, code in page.code:
    for path in path_candidates(code):
      problem = path_problem(path, page_dir)
      if problem:
        problems.append((line, problem))
  for line, target in page.links:
    if re.match(r"[a-z]+:", target) or target.startswith(IGNORED_PREFIXES):
      continue
    file_part, _, fragment = target.partition("#")
    problem = path_problem(file_part, page_dir, link=True) if file_part else None
    if problem:
      problems.append((line, f"link {problem}"))
      continue
    if not fragment or (file_part and not file_part.endswith(".md")):
      continue
    if file_part:
      known = anchors_of(os.path.join(REPO, os.path.normpath(os.path.join(page_dir, file_part))))
    else:
      known = anchors(page.headings)
    if fragment not in known:
      problems.append((line, f"link {target}: no heading with the anchor #{fragment}"))
  return problems


def check_config_fields(page: Page) -> list[tuple[int, str]]:
  """`--config.X.Y` anywhere; `config.X.Y` and `model.X` (input, optimizer, schedule) in code."""
  fields = []
  for line, m in page.everywhere(r"--config\.([A-Za-z_][\w.]*)"):
    fields.append((line, m.group(1).rstrip("."), f"--config.{m.group(1).rstrip('.')}"))
  sections = "|".join(CONFIG_SECTIONS)
  pattern = rf"(?<![\w./-])(?:config\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)|((?:{sections})\.[A-Za-z_]\w*))(?![\w(.<])"
  for line, code in page.code:
    for m in re.finditer(pattern, code):
      field = m.group(1) or m.group(2)
      if field.split(".")[-1] not in NOT_ATTRIBUTES:
        fields.append((line, field, m.group(0)))
  problems = []
  for line, field, written in fields:
    if any(part.isupper() for part in field.split(".")) or field in KNOWN_WRONG_FIELDS:
      continue  # a placeholder (--config.FIELD=VALUE) or the misspelling the docs show on purpose
    if not has_field(field):
      problems.append((line, f"{written}: no config field {field!r} in imagenet2012.py or fashion_mnist.py"))
  return problems


def check_backticks(page: Page) -> list[tuple[int, str]]:
  """Paragraphs whose backticks do not pair: the other checks would read the wrong spans."""
  return [(line, "the paragraph starting here has an unpaired backtick") for line in page.unpaired]


CHECKS = (check_backticks, check_modules, check_dotted_names, check_paths, check_config_fields)
# The front page stays a front page: the rest goes to docs/.
README_MAX_LINES = 250


def check_text(text: str, name: str) -> list[str]:
  """Every stale reference of one page, as 'NAME:LINE: what'.

  A section whose heading says "history" records code that no longer exists: only its links are
  checked (they point at pages that must still exist).
  """
  page = Page(text, name)
  problems = {problem for check in CHECKS for problem in check(page)}
  problems = {(line, what) for line, what in problems if line not in page.history or what.startswith("link ")}
  return [f"{name}:{line}: {what}" for line, what in sorted(problems)]


# Scripts of the repository that the docs run as `python PATH`.
SCRIPT_PATTERN = r"python3? ((?:launch|experiments|tests)/[\w/]+\.py)\b"


def documented_commands() -> list[str]:
  """Every command the docs run: ``python -m X`` of the repository's own modules, ``python PATH.py`` of its scripts."""
  commands = set()
  for name in doc_files():
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
      page = Page(f.read(), name)
    for _, m in page.everywhere(r"python3? -m ([A-Za-z_][\w.]*)"):
      module = m.group(1).rstrip(".")
      if module.split(".")[0] in OWN_PACKAGES and module_exists(module):
        commands.add(module)
    commands.update(
      m.group(1) for _, m in page.everywhere(SCRIPT_PATTERN) if os.path.isfile(os.path.join(REPO, m.group(1)))
    )
  return sorted(commands)


def check_help_text(command: str, text: str) -> list[str]:
  """Every stale reference of a command's ``--help``: the whole text is read as code (no Markdown there)."""
  return check_text(f"```\n{text}\n```", f"{command} --help")


# --- the tests --------------------------------------------------------------------------------------


def test_the_docs_name_only_what_exists():
  problems = []
  for name in doc_files():
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
      problems += check_text(f.read(), name)
  assert not problems, f"{len(problems)} stale references in the docs:\n" + "\n".join(problems)


@pytest.mark.slow
def test_every_documented_command_has_a_help_that_names_only_what_exists():
  commands = documented_commands()
  assert "alexnet_jax.main" in commands and "launch/sweep.py" in commands, commands
  done = subprocess.run(
    [sys.executable, os.path.join("tests", "support", "command_help.py"), *commands],
    cwd=REPO,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "120"},
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  texts = json.loads(done.stdout.strip().splitlines()[-1])
  silent = [command for command in commands if len(texts[command].strip()) < 40]
  assert not silent, f"commands whose --help printed (almost) nothing: {silent}"
  problems = [problem for command in commands for problem in check_help_text(command, texts[command])]
  assert not problems, f"{len(problems)} stale references in --help texts:\n" + "\n".join(problems)


# The design notes kept beside a checkout, not in it (written in two parts so that this file does not name them).
NOTES_OUTSIDE = "DESIGN" + ".md"
# Files read for that name: the repository's text files.
TEXT_EXTENSIONS = (".py", ".md", ".sh", ".sbatch", ".toml", ".cfg", ".txt", ".json", ".yaml", ".yml")


def test_no_file_names_the_design_notes_outside_the_repository():
  """A clone has no ../shared/: the facts live in docs/ (docs/measurements.md) and comments point there."""
  naming = []
  for path in sorted(repo_files()):
    if path.endswith(TEXT_EXTENSIONS) or os.path.basename(path) == "Makefile":
      with open(os.path.join(REPO, path), encoding="utf-8", errors="replace") as f:
        naming += [f"{path}:{n}" for n, line in enumerate(f, 1) if NOTES_OUTSIDE in line]
  assert not naming, f"files that cite {NOTES_OUTSIDE}, which is not in the repository: {naming}"


def test_the_readme_is_a_front_page():
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    lines = f.read().rstrip("\n").count("\n") + 1
  assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"


def test_every_docs_page_is_linked_from_the_readme():
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    linked = {os.path.normpath(target.split("#")[0]) for _, target in Page(f.read(), "README.md").links}
  pages = [name for name in doc_files() if name.startswith("docs" + os.sep)]
  assert pages, "no docs/*.md pages"
  orphans = [name for name in pages if name not in linked]
  assert not orphans, f"docs pages the README does not link: {orphans}"


def test_the_configuration_page_lists_the_declared_model_options():
  """docs/configuration.md holds the table ``python -m alexnet_jax.model.options`` prints: an option
  added, renamed, or given another default or meaning in ``model/options.py`` shows up there."""
  from alexnet_jax.model import options  # pylint: disable=g-import-not-at-top -- pure Python

  with open(os.path.join(REPO, "docs", "configuration.md"), encoding="utf-8") as f:
    page = f.read()
  assert page.count(options.markdown_table()) == 1, (
    "docs/configuration.md's model table is not the options' declarations: paste in the output of"
    " `python -m alexnet_jax.model.options`"
  )


def test_the_configuration_page_lists_every_declared_config_field():
  """docs/configuration.md holds each table ``python -m alexnet_jax.config.field_tables`` prints: a
  field added, renamed, or given another default or meaning in its option table shows up there."""
  from alexnet_jax.config import field_tables  # pylint: disable=g-import-not-at-top

  with open(os.path.join(REPO, "docs", "configuration.md"), encoding="utf-8") as f:
    page = f.read()
  stale = [
    heading for heading, sections in field_tables.TABLES.items() if field_tables.markdown_table(sections) not in page
  ]
  assert not stale, (
    f"docs/configuration.md's tables {stale} are not the fields' declarations: paste in the output of"
    " `python -m alexnet_jax.config.field_tables`"
  )


def test_the_checks_report_planted_stale_references():
  fake = "\n".join(
    [
      "# A page",  # 1
      "`python -m alexnet_jax.offline_data` and `python -m alexnet_jax.evaluate`",  # 2: first stale
      "the LRN: `alexnet_jax.layers.local_response_norm`, now `alexnet_jax.model.layers.local_response_norm`",  # 3
      "`alexnet_jax.model.alexnet.AlexNet.no_such_method` beside `alexnet_jax.model.alexnet.AlexNet.fc7_features`",
      "`augment.centre_and_flip` (stale) beside `augment.eval_views` and `summary.json`",  # 5
      "`alexnet_jax/data/pipeline.py` and `data/device_augment.py`, beside `data/loader.py`",  # 6
      "```",
      "python -m alexnet_jax.main --config=experiments/no_such_config.py:smoke --workdir=runs/x",  # 8
      "```",
      "`--config.input.shuffle_buffer=10` and `config.input.augment_on`, beside `--config.model.lrn=False`",  # 10
      "[a page](docs/no_such_page.md), [a section](#a-page), [another](#no-such-section)",  # 11
      "`model.in_chanels=1` and `WORKDIR/checkpoints/` and `~/x/y.py` and `/tmp/z.py`",  # 12
      "",
      "## History of the old pipeline",
      "`--config.input.augment_on=host` is a record here, not a stale name",  # 15: not reported
      "",
      "## Later",
      "a stray ` backtick",  # 18, in the paragraph of line 17
    ]
  )
  reported = check_text(fake, "FAKE.md")
  expected = {
    2: "alexnet_jax.offline_data",
    3: "alexnet_jax.layers.local_response_norm",
    4: "AlexNet.no_such_method",
    5: "augment.centre_and_flip",
    6: "alexnet_jax/data/pipeline.py",
    8: "experiments/no_such_config.py",
    10: "input.shuffle_buffer",
    11: "docs/no_such_page.md",
    12: "in_chanels",
    17: "unpaired backtick",
  }
  for line, stale in expected.items():
    assert any(r.startswith(f"FAKE.md:{line}: ") and stale in r for r in reported), (line, stale, reported)
  for stale in ("data/device_augment.py", "input.augment_on", "#no-such-section"):
    assert any(stale in r for r in reported), (stale, reported)
  # What exists is not reported: only the planted names (line 2's twice: a module and a dotted name).
  assert len(reported) == len(expected) + 4, reported


def test_the_help_check_reports_planted_stale_names():
  """A help text is plain text: a stale file or module is reported wherever it stands, not only in backticks."""
  planted = (
    "  --baseline  also time the textbook Flax AlexNet (textbook_model.py), the 'before'\n"
    "  --config    e.g. experiments/no_such_config.py; see alexnet_jax.no_such_module and yardsticks/textbook.py\n"
    "Run python -m alexnet_jax.no_such_command; the report is summary.json in --workdir (model.in_chanels)."
  )
  reported = check_help_text("python -m alexnet_jax.benchmark", planted)
  for stale in ("textbook_model.py", "experiments/no_such_config.py", "alexnet_jax.no_such_module"):
    assert any(stale in r for r in reported), (stale, reported)
  assert any("`python -m alexnet_jax.no_such_command`" in r for r in reported), reported
  assert any("in_chanels" in r for r in reported), reported
  assert not any("yardsticks/textbook.py" in r or "summary.json" in r for r in reported), reported

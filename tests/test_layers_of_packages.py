"""The sub-packages of alexnet_jax form layers: no import cycle between them (a static scan of every
import statement, function-level ones included), and none of model/, data/, train/, parallel/
imports config/ (which sits above them). Inside data/, no cycle between modules either."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_jax")
SUB_PACKAGES = sorted(
  name for name in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py"))
)


def _imported_modules(tree: ast.AST) -> list[str]:
  """Every absolute module name an import in ``tree`` names (``from a import b``: ``a`` and ``a.b``)."""
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
  return names


def import_graph() -> dict[str, set[str]]:
  """Sub-package -> the other sub-packages its modules import."""
  graph = {name: set() for name in SUB_PACKAGES}
  for name in SUB_PACKAGES:
    for folder, _, files in os.walk(os.path.join(PACKAGE, name)):
      for file in (f for f in files if f.endswith(".py")):
        with open(os.path.join(folder, file)) as source:
          for module in _imported_modules(ast.parse(source.read())):
            parts = module.split(".")
            if parts[0] == "alexnet_jax" and len(parts) > 1 and parts[1] in graph and parts[1] != name:
              graph[name].add(parts[1])
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A path a -> ... -> a in ``graph``, or None if it has no cycle (depth-first search)."""
  state = {}

  def visit(node, path):
    state[node] = "open"
    for successor in sorted(graph[node]):
      if state.get(successor) == "open":
        return path[path.index(successor) :] + [successor]
      if successor not in state and (cycle := visit(successor, path + [successor])):
        return cycle
    state[node] = "done"
    return None

  return next((cycle for node in sorted(graph) if node not in state and (cycle := visit(node, [node]))), None)


def test_the_cycle_finder_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_sub_packages():
  graph = import_graph()
  assert {"config", "data", "model", "parallel", "train"} <= set(graph)
  assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}; graph: {graph}"


@pytest.mark.parametrize("lower", ["model", "data", "train", "parallel"])
def test_the_packages_below_config_do_not_import_it(lower):
  assert "config" not in import_graph()[lower]


def data_module_graph() -> dict[str, set[str]]:
  """Module of ``alexnet_jax/data`` -> the other data modules it imports."""
  folder = os.path.join(PACKAGE, "data")
  names = {file[:-3] for file in os.listdir(folder) if file.endswith(".py")}
  graph = {}
  for name in names:
    with open(os.path.join(folder, f"{name}.py")) as source:
      modules = _imported_modules(ast.parse(source.read()))
    graph[name] = {module.split(".")[2] for module in modules if module.startswith("alexnet_jax.data.")} & names
  return graph


def test_no_import_cycle_between_the_data_modules():
  """The registry names a dataset's converter by its module's name, so the converter may use what
  ``datasets`` uses without importing it (fashion_mnist_offline and datasets imported each other)."""
  graph = data_module_graph()
  assert {"registry", "data_dirs"} <= graph["datasets"] and "datasets" not in graph["fashion_mnist_offline"]
  assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"

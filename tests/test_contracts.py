"""docs/contracts.md's "Where each idea lives" table is true: every name it lists is defined exactly once in hhh/
(a module-level def, class or assignment; importing it elsewhere is a use, not a definition), in the file its row
names. Also the house rules that keep it so: the hhh/ root holds only __init__.py and the command shims, no file in
hhh/ or tools/ is over 400 lines, no module in hhh/ imports a module of a higher layer, and there are no import
cycles."""

import ast
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
HHH = REPO / "hhh"
SHIMS = {"__init__.py", "sample.py", "chat.py", "best_of_n.py"}  # `python -m hhh.sample|chat|best_of_n`


def _table() -> list:
  """[(idea, [paths], [names])] of the "Where each idea lives" table: paths are the backticked `hhh/...` entries,
  names the backticked identifiers (`name`, `Class.method`, `hhh.package.name`)."""
  text = (REPO / "docs" / "contracts.md").read_text()
  section = text.split("## Where each idea lives", 1)[1].split("\n## ", 1)[0]
  rows = []
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 2 or cells[0] in ("idea", "---") or set(cells[0]) <= {"-"}:
      continue
    ticks = re.findall(r"`([^`]+)`", cells[1])
    paths = [t for t in ticks if t.startswith("hhh/")]
    names = [t.rstrip("()") for t in ticks
             if not t.startswith("hhh/") and not t.endswith(".py") and re.fullmatch(r"[\w.]+(\(\))?", t)]
    rows.append((cells[0], paths, names))
  return rows


def _definitions() -> dict:
  """name -> [module files defining it at module level]."""
  out = {}
  for path in sorted(HHH.rglob("*.py")):
    tree = ast.parse(path.read_text())
    for node in tree.body:
      names = []
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names = [node.name]
      elif isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
      for n in names:
        out.setdefault(n, []).append(path.relative_to(REPO).as_posix())
  return out


ROWS = _table()
DEFS = _definitions()


def test_the_table_is_read():
  assert len(ROWS) >= 15, ROWS
  assert sum(len(names) for _, _, names in ROWS) >= 20


@pytest.mark.parametrize("idea,paths,names", ROWS, ids=[r[0][:40] for r in ROWS])
def test_each_listed_name_is_defined_once_where_the_table_says(idea, paths, names):
  for p in paths:
    assert (REPO / p).exists(), f"{idea}: {p} does not exist"
  for name in names:
    # `hhh.pkg.name`: defined once in that package (a generic name may recur elsewhere for another idea);
    # `Class.method`: the class; a bare name: defined once in all of hhh/.
    if name.startswith("hhh."):
      home, name = name.rsplit(".", 1)
      where = [w for w in DEFS.get(name, []) if w.startswith(home.replace(".", "/") + ("/" if (
          REPO / home.replace(".", "/")).is_dir() else ".py"))]
    else:
      where = DEFS.get(name.split(".")[0], [])
    assert len(where) == 1, f"{idea}: {name} is defined {len(where)} times: {where}"
    if paths:
      assert any(where[0] == p or where[0].startswith(p.rstrip("/") + "/") or
                 (p.endswith("/__init__.py") and where[0].startswith(p[:-len("__init__.py")])) for p in paths), (
                     f"{idea}: {name} is defined in {where[0]}, not in {paths}")


def test_the_package_root_holds_only_init_and_the_command_shims():
  assert {p.name for p in HHH.glob("*.py")} == SHIMS
  for shim in SHIMS - {"__init__.py"}:
    assert len((HHH / shim).read_text().splitlines()) <= 12, shim  # quiet(), import main, call it


def test_no_file_in_hhh_or_tools_is_over_400_lines():
  long = {p.relative_to(REPO).as_posix(): n for p in [*HHH.rglob("*.py"), *(REPO / "tools").glob("*.py")]
          if (n := len(p.read_text().splitlines())) > 400}
  assert not long, long


# The layers, bottom to top: a module may import its own layer and those below it (a module takes its package's
# layer).
LAYERS = [
    ["hhh.core"],
    ["hhh.models", "hhh.sandbox"],
    ["hhh.data"],
    ["hhh.config", "hhh.prompts"],
    ["hhh.run", "hhh.scoring", "hhh.cli"],  # cli: the command helper every main() uses
    ["hhh.objectives"],
    ["hhh.sampling", "hhh.hf"],
    ["hhh.train"],
    ["hhh.eval"],
    ["hhh.lab"],
]

def _layer(module: str):
  best = None
  for i, prefixes in enumerate(LAYERS):
    for p in prefixes:
      if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
        best = (i, p)
  return None if best is None else best[0]


def _imports(path: pathlib.Path) -> set:
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hhh"):
      out.update(f"{node.module}.{a.name}" for a in node.names)
    elif isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith("hhh"))
  return out


def test_nothing_imports_upward():
  upward = []
  for path in HHH.rglob("*.py"):
    rel = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
    here = _layer(rel)
    if here is None:  # the root's __init__ and shims: entry points, above everything
      continue
    for imported in _imports(path):
      there = _layer(imported)
      if there is not None and there > here:
        upward.append(f"{rel} imports {imported}")
  assert not upward, upward


def _module_graph() -> dict:
  """hhh module -> the hhh modules its module-level statements import (`from pkg import name` counts as pkg.name
  when that is a module, else as pkg)."""
  modules = {p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__"): p
             for p in HHH.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    deps = set()
    for node in ast.parse(path.read_text()).body:  # module level only: a function's import runs later
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hhh"):
        for a in node.names:
          deps.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
      elif isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name in modules)
    graph[name] = deps - {name}
  return graph


def test_no_import_cycles():
  """A package's __init__ importing its own submodules is how Python loads a package, not a cycle; any other loop
  among module-level imports is."""
  graph = _module_graph()
  cycles, state = [], {}

  def visit(m, stack):
    state[m] = "open"
    for d in sorted(graph.get(m, ())):
      if d.startswith(m + "."):  # a package importing its own submodule
        continue
      if state.get(d) == "open":
        cycles.append(stack[stack.index(d):] + [d])
      elif d in graph and d not in state:
        visit(d, stack + [d])
    state[m] = "done"

  for m in sorted(graph):
    if m not in state:
      visit(m, [m])
  assert not cycles, cycles


def test_docs_name_no_machine_absolute_paths():
  """Paths in the README and docs/ are relative (runs/..., ../shared/...); /tmp/libtpu_lockfile is libtpu's own."""
  found = []
  for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
    for i, line in enumerate(path.read_text().splitlines(), 1):
      for m in re.finditer(r"(?<![\w.~])/(work|home|tmp|root|Users|mnt|opt/hhh)/[\w./-]+", line):
        if m.group(0) != "/tmp/libtpu_lockfile":
          found.append(f"{path.name}:{i}: {m.group(0)}")
  assert not found, found

"""The layers point one way (docs/ARCHITECTURE.md): read from each module's imports, statically."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "aigc_jax")


def modules() -> dict[str, set[str]]:
    """Module path (relative to aigc_jax/, no .py) -> every module name it imports, at any depth."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            imported = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module)
                    imported.update(f"{node.module}.{a.name}" for a in node.names)
            out[os.path.relpath(path, PACKAGE)[:-3]] = imported
    return out


def offending(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} imports {name}" for module, names in modules().items() if module.startswith(layer)
                  for name in names if any(name == f or name.startswith(f + ".") for f in forbidden))


ABOVE_THE_LIBRARY = ("train", "benchmarks", "aigc_jax.cli", "aigc_jax.api", "aigc_jax.benchmarks")


@pytest.mark.parametrize("layer,forbidden", [
    ("engine", ("aigc_jax.tasks", "aigc_jax.eval", *ABOVE_THE_LIBRARY)),
    ("tasks", ABOVE_THE_LIBRARY),
    ("models", ("aigc_jax.tasks", "aigc_jax.engine", "aigc_jax.eval", *ABOVE_THE_LIBRARY)),
    ("data", ("aigc_jax.tasks", "aigc_jax.engine", *ABOVE_THE_LIBRARY)),
    ("eval", ("aigc_jax.tasks", "aigc_jax.engine", *ABOVE_THE_LIBRARY)),
    ("rl", ("aigc_jax.tasks", *ABOVE_THE_LIBRARY)),
    ("envs", ("aigc_jax.tasks", "aigc_jax.engine", *ABOVE_THE_LIBRARY)),
])
def test_no_import_runs_back_up(layer, forbidden):
    assert offending(layer, forbidden) == []


def test_no_module_is_missed():
    found = {m.split(os.sep)[0] for m in modules()}
    assert {"engine", "tasks", "models", "data", "eval", "rl", "envs", "benchmarks"} <= found


def test_tasks_assign_attributes_only_in_init():
    """Tasks are immutable: what load_data prepares travels in Splits.constants (Task.bind)."""
    found = []
    for name in sorted(os.listdir(os.path.join(PACKAGE, "tasks"))):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(PACKAGE, "tasks", name)).read())
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name != "__init__"):
            for node in ast.walk(function):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                found += [f"{name}:{node.lineno} {function.name} sets self.{t.attr}" for t in targets
                          if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"]
    assert found == []

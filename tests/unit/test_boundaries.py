"""Engine and UI stay apart: the engine never imports textual; the app never imports torch at import."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "__main__.py":  # runs the program when imported
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts)


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


@pytest.mark.parametrize("module", list(modules("oel_engine")))
def test_engine_never_imports_textual(module):
    assert not any(m == "textual" or m.startswith("textual.") for m in imported_after(module))


@pytest.mark.parametrize("module", list(modules("oel_tui")))
def test_tui_imports_no_torch_or_transformers(module):
    loaded = imported_after(module)
    assert not {"torch", "transformers", "peft"} & loaded


# -- the engine's layers (oel_engine.LAYERS) ----------------------------------------------------

def engine_imports() -> dict[str, set[str]]:
    """Module -> the oel_engine modules it imports anywhere (function-level imports included)."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "oel_engine").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("oel_engine"):
                    targets.add(target)
                    targets.update(f"{target}.{a.name}" for a in node.names)  # `from .round import fork`
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("oel_engine"))
        graph[name] = targets
    return {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_name_has_a_layer():
    import oel_engine

    placed = {u for layer in oel_engine.LAYERS for u in layer}
    present = {unit_of(m) for m in engine_imports()} - {""}
    assert present == placed, f"unplaced: {present - placed}, placed but absent: {placed - present}"


def test_engine_imports_only_downward():
    import oel_engine

    level = {u: i for i, layer in enumerate(oel_engine.LAYERS) for u in layer}
    vocabulary = set(oel_engine.LAYERS[-1])
    wrong = []
    for module, targets in engine_imports().items():
        for target in targets:
            a, b = unit_of(module), unit_of(target)
            if not a or not b or a == b or (a in vocabulary and b in vocabulary):
                continue
            if level[b] <= level[a]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that run sideways or up:\n" + "\n".join(sorted(wrong))


def test_engine_has_no_import_cycle():
    graph = engine_imports()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if state.get(module) is None and visit(module, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_cli_reaches_the_engine_through_its_door_only():
    import oel_engine

    allowed = {"cli", "session"} | set(oel_engine.LAYERS[-1])
    wrong = [f"{m} -> {t}" for m, ts in engine_imports().items() if unit_of(m) == "cli"
             for t in ts if unit_of(t) not in allowed]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_test_file_imports_another():
    """What tests share lives in tests/support; a test file imports no other test file."""
    import ast

    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                names = [module.rsplit(".", 1)[-1]] + [a.name for a in node.names]
                if any(n.startswith("test_") or n == "conftest" for n in names):
                    wrong.append(f"{path.relative_to(ROOT)}: from {module} import ...")
    assert not wrong, "\n".join(wrong)

"""Engine and UI stay apart: the engine never imports textual; the app never imports torch at import."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def modules(package):
    for path in sorted((ROOT / package).rglob("*.py")):
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

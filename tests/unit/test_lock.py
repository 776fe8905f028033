"""The lock (requirements/lock.txt) and its checker: the installed versions are compared pin by pin,
and the lock stays inside the ranges pyproject.toml gives people installing the library."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_lock", ROOT / "requirements" / "check_lock.py")
check_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_lock)


def test_pins_are_read_with_canonical_names_and_comments_skipped(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nTorch==2.13.0+cpu\n    # via oel-tui (pyproject.toml)\ntextual_plotext==1.0.1\n"
                    "rich==14.1.0 ; python_version >= '3.11'\n\n")
    assert check_lock.read_lock(lock) == {"torch": "2.13.0+cpu", "textual-plotext": "1.0.1", "rich": "14.1.0"}


def test_an_empty_lock_is_an_error_not_a_pass(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# nothing pinned\n")
    with pytest.raises(SystemExit, match="no pinned versions"):
        check_lock.read_lock(lock)


def test_missing_and_moved_packages_are_each_one_line():
    locked = {"torch": "2.13.0+cpu", "rich": "14.1.0", "numpy": "2.3.0"}
    installed = {"torch": "2.14.1", "rich": "14.1.0", "extra-thing": "1.0"}
    assert check_lock.differences(locked, installed) == [
        "numpy: locked 2.3.0, not installed",
        "torch: locked 2.13.0+cpu, installed 2.14.1",
    ]
    assert check_lock.differences(locked, dict(locked)) == []


def test_the_lock_is_inside_pyproject_ranges_with_the_cpu_torch():
    pins = check_lock.read_lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("dev", "trl"):
        wanted += project["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        name = check_lock.canonical(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in the lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"lock pins {name}=={pins[name]}, outside pyproject's {requirement.specifier}"
    assert pins["torch"].endswith("+cpu")

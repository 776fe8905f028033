"""Check that this Python's installed packages are the versions in requirements/lock.txt.

    python requirements/check_lock.py            # exit 0 when equal, 1 with one line per difference

`make setup` and CI run it after installing, so a suite that passes passed on the locked versions.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).with_name("lock.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """name -> version for every `name==version` line (comments and `via` lines skipped)."""
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line.strip()):
            pins[canonical(match.group(1))] = match.group(2)
    if not pins:
        raise SystemExit(f"{path}: no pinned versions in it (make lock writes it)")
    return pins


def installed_versions() -> dict[str, str]:
    return {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions() if dist.metadata["Name"]}


def differences(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """One line per locked package that is missing or at another version."""
    lines = []
    for name, version in sorted(locked.items()):
        have = installed.get(name)
        if have is None:
            lines.append(f"{name}: locked {version}, not installed")
        elif have != version:
            lines.append(f"{name}: locked {version}, installed {have}")
    return lines


def main() -> int:
    lines = differences(read_lock(), installed_versions())
    for line in lines:
        print(line)
    if lines:
        print(f"{len(lines)} package(s) differ from {LOCK.name}: run `make setup` (or `make lock` to move the lock)",
              file=sys.stderr)
        return 1
    print(f"installed packages equal {LOCK.name} ({len(read_lock())} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

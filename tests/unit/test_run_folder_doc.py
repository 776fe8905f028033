"""docs/run-folder.md lists exactly the files the code's own layout blocks name (the docstrings of
oel_engine/run/), so the page cannot drift from the code."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_entries(text: str) -> set[str]:
    """Paths named in `saves/<run>/` blocks: the first word of each line indented two spaces."""
    entries, inside = set(), False
    for line in text.splitlines():
        if line.strip() == "saves/<run>/":
            inside = True
        elif inside and re.match(r"^  \S", line):
            names = re.split(r",\s*", line.strip().split("  ")[0])
            entries.update(n for n in names if n)
        elif inside and not line.startswith("   "):  # a line that is neither an entry nor a continuation
            inside = False
    return entries


def code_entries() -> set[str]:
    out = set()
    for path in sorted((ROOT / "oel_engine" / "run").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        out |= layout_entries(doc)
    return out


def test_the_run_folder_page_names_what_the_code_names():
    documented = layout_entries((ROOT / "docs" / "run-folder.md").read_text())
    in_code = code_entries()
    assert in_code, "no layout block found in oel_engine/run/"
    assert documented == in_code, (f"only in docs/run-folder.md: {sorted(documented - in_code)}; "
                                   f"only in oel_engine/run/ docstrings: {sorted(in_code - documented)}")


def test_a_layout_block_is_read_entry_by_entry():
    block = "saves/<run>/\n  a.txt   first\n          continued\n  b/c.json, d.json  two\nafter\n  e.txt\n"
    assert layout_entries(block) == {"a.txt", "b/c.json", "d.json"}

"""bench/compounding.py: the rounds-of-a-lesson table read from runs, and its section of the page."""

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from oel_engine.metrics import EvalKind
from oel_engine.report.data import RunData
from oel_engine.round import RoundRunner
from oel_engine.run.artifacts import RunArtifacts
from oel_engine.run.loop_config import open_loop_run
from tests.support import new_lm, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compounding  # noqa: E402
from claims_report import kept_sections  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def saves(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("compounding")
    tiny = tiny_config(rounds=2)
    config = replace(tiny, consolidation=replace(tiny.consolidation, teacher_context="lessons"), preset="teach")
    for seed in (0, 1):
        store, cfg = open_loop_run(root, f"lesson-s{seed}", replace(config, seed=seed))
        try:
            RunArtifacts(store).experience.set_external("- EXPERIENCE ITEM: Go down or right.", "lesson.txt", 0, 1)
            RoundRunner(store, cfg, new_lm(tiny_tokenizer)).run(2)
        finally:
            store.close()
    (root / "random-3x8.json").write_text('{"pass_rate": 0.04, "pass_rate_se": 0.02, "legal_action_rate": 1.0, '
                                          '"games": 24, "good_move_prob": 0.625}')
    return root


def test_the_section_reads_every_round_of_every_seed(saves, tmp_path):
    args = SimpleNamespace(lessons=["lesson.txt"], seeds=[0, 1], saves=saves, maps=3, samples=2, rounds=2,
                           results=tmp_path / "docs" / "results.md")
    text = compounding.section(args)
    runs = [RunData.load(saves / f"lesson-s{s}") for s in (0, 1)]
    for r in (0, 1):
        probe = [run.evaluation(r, EvalKind.CONSOLIDATED).good_move_prob for run in runs]
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {r} | consolidated, nothing in the prompt |"))
        assert row.split(" | ")[3] == " / ".join(f"{p:.3f}" for p in probe)
        assert row.split(" | ")[2].startswith(f"{sum(probe) / 2:.3f} ± ")
        assert row.rstrip(" |").endswith(f"| {2 * 3 * 2}")  # 2 seeds x 3 maps x 2 samples pooled
        assert any(line.startswith(f"| {r} | teacher (round {r}'s starting model + lesson) |") for line in text.splitlines())
    assert "| - | base |" in text and "pass rate 4.0% ± 2.0%" in text
    assert (args.results.parent / "results" / "compounding-lesson.png").read_bytes()[:8] == PNG


def test_the_section_replaces_its_own_block_and_the_claims_page_keeps_it(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# The paper's claims\n\nclaims text\n")
    compounding.replace_block(page, "compounding", "## Rounds\nfirst")
    compounding.replace_block(page, "compounding", "## Rounds\nsecond")
    text = page.read_text()
    assert text.startswith("# The paper's claims\n\nclaims text\n") and "second" in text and "first" not in text
    assert text.count("<!-- compounding:start -->") == 1
    assert kept_sections(page) == ["", "<!-- compounding:start -->\n## Rounds\nsecond\n<!-- compounding:end -->"]
    assert kept_sections(tmp_path / "missing.md") == []

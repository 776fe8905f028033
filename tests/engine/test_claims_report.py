"""bench/claims_report.py: the verdict rule, and docs/results.md written from a (partial) tiny matrix."""

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from oel_engine.metrics import EvalKind, MetricsLog
from oel_engine.report.data import RunData
from oel_engine.round.fork import fork_run
from tests.support import run_rounds, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import claims  # noqa: E402
from claims_report import FAILS, HOLDS, UNSURE, Comparison, verdict, write_results  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def logged(*records):
    """A stand-in run holding just these metrics records."""
    return SimpleNamespace(log=MetricsLog(list(records)))


@pytest.mark.parametrize("diffs,floor,expected", [
    ([0.10, 0.12, 0.11], False, HOLDS),
    ([-0.10, -0.12, -0.11], False, FAILS),
    ([0.10, -0.10, 0.05], False, UNSURE),
    ([0.3, 0.0, 0.0], False, UNSURE),  # one seed's gain is not enough: mean 0.1, 2 se 0.2
    ([0.0, 0.0, 0.0], True, UNSURE + " (0 on both sides)"),
    ([0.05], False, UNSURE + " (one seed)"),
    ([], False, "not measured yet"),
])
def test_the_verdict_rule(diffs, floor, expected):
    assert verdict(diffs, floor) == expected


def test_a_comparison_pairs_seeds_and_skips_missing_runs():
    c = Comparison("b", "frozenlake", "pass_rate", "a", "b", {0: 0.5, 1: 0.25, 2: None}, {0: 0.25, 1: 0.25, 2: 0.1})
    assert c.diffs() == [0.25, 0.0] and not c.at_floor()
    assert c.summary() == "+12.5% ± 12.5%"
    assert Comparison("b", "frozenlake", "pass_rate", "a", "b", {0: 0.0, 1: 0.0}, {0: 0.0, 1: 0.0}).at_floor()
    # the probe reads the same maps whatever the seed: identical seeds do not make the error vanish
    same = Comparison("b", "frozenlake", "good_move_prob", "a", "b", {0: 0.30, 1: 0.30}, {0: 0.25, 1: 0.25},
                      a_se={0: 0.03, 1: 0.03}, b_se={0: 0.04, 1: 0.04})
    assert same.se() == pytest.approx(0.05) and same.verdict() == UNSURE and same.summary() == "+5.0% ± 5.0%"
    assert verdict([0.05, 0.05], min_se=0.0) == HOLDS


@pytest.fixture(scope="module")
def saves(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("claims")
    for s in (0, 1):
        base = tiny_config(rounds=2)
        config = replace(base, seed=s, evaluation=replace(base.evaluation, ood_samples=1, ood_max_new_tokens=3))
        run_rounds(root, f"fl-main-s{s}", tiny_tokenizer, config, rounds=2)
        fork_run(root, f"fl-main-s{s}", f"fl-offpolicy-s{s}", loss="offpolicy")
        run_rounds(root, f"fl-offpolicy-s{s}", tiny_tokenizer, rounds=1)
    (root / "random-frozenlake.json").write_text(
        '{"pass_rate": 0.031, "pass_rate_std": 0.029, "good_move_prob": 0.625, "good_move_prob_se": 0.04, '
        '"command": "oel eval --policy random --game frozenlake"}')
    return root


def test_results_from_a_partial_matrix(saves, tmp_path):
    cells = claims.matrix([0, 1], ["frozenlake"], ood=1)
    out = write_results(saves, cells, tmp_path / "docs" / "results.md", model="embedded", preset="demo", log=lambda m: None)
    text = out.read_text()
    for claim in "abcdef":
        assert f"## ({claim})" in text
    # (b): the measured per-seed values and their paired difference
    runs = [RunData.load(saves / f"fl-main-s{s}") for s in (0, 1)]
    cons = [r.evaluation(0, EvalKind.CONSOLIDATED).good_move_prob for r in runs]
    inctx = [r.evaluation(0, EvalKind.IN_CONTEXT).good_move_prob for r in runs]
    row = lambda name, after="": next(line for line in (text.split(after)[-1] if after else text).splitlines() if line.startswith(f"| {name} |"))
    table = "Frozen Lake, good-move probability: consolidated, no experience in the prompt against in context"
    assert row("consolidated, no experience in the prompt", table).split(" | ")[1:3] == [f"{v:.1%}" for v in cons]
    assert row("**difference**", table).split(" | ")[1] == f"{cons[0] - inctx[0]:+.1%}".replace("+0.0%", "0.0%")
    assert "| random legal-move player |" in text and "62.5% ± 4.0%" in text
    # (e): the fork's instruction-probe reading is paired with its source's seed
    from oel_engine.metrics import OodSample

    fork_log = RunData.load(saves / "fl-offpolicy-s1").log
    kinds = sorted(o.kind for o in fork_log.of(OodSample, round=0))
    assert kinds == ["base", "consolidated"]  # the source's base probe kept, its consolidated one redone, not copied
    off = RunData.load(saves / "fl-offpolicy-s1").ood(0, EvalKind.CONSOLIDATED)[0]
    assert f"{off:.1%}" in row("off-policy consolidated (round 1)")
    # runs the tiny matrix does not have are listed as not made, with their commands
    assert "| `fl-trajectories-s0` | trajectories | 1 | not yet |" in text
    assert "`oel fork --run fl-main-s0 --as fl-trajectories-s0 --teacher-context trajectories" in text
    charts = [line.split("(")[-1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert "results/claim-a-frozenlake-curve.png" in charts and "results/claim-c-frozenlake-rounds.png" in charts
    for chart in charts:
        assert (out.parent / chart).read_bytes()[:8] == PNG


def test_the_precision_line_says_when_runs_differ():
    from claims_report import _precisions

    from oel_engine.metrics import PrecisionChoice

    def run(*choices):
        return logged(*(PrecisionChoice(use=use, choice=choice) for use, choice in choices))

    same = SimpleNamespace(runs={"a": run(("sampling", "bf16")), "b": run(("sampling", "bf16"))})
    assert _precisions(same) == " Precision: sampling in bf16 in every run."
    mixed = SimpleNamespace(runs={"a": run(("sampling", "bf16"), ("consolidation", "float32")),
                                  "b": run(("sampling", "float32"), ("consolidation", "float32"))})
    assert _precisions(mixed) == (" Precision: consolidation in float32 in every run, "
                                  "sampling mixed: bf16 in a; float32 in b.")
    assert _precisions(SimpleNamespace(runs={})) == ""


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_share_the_matrix_with_forks_after_their_source(workers):
    cells = claims.matrix([0, 1, 2], ["frozenlake", "sokoban"], ood=1)
    shares = [claims.share(cells, k, workers) for k in range(1, workers + 1)]
    assert sorted(c.name for s in shares for c in s) == sorted(c.name for c in cells)
    for s in shares:
        names = [c.name for c in s]
        for i, c in enumerate(s):
            if c.fork_of is not None:
                assert c.fork_of in names[:i]
    if workers == 2:
        assert all(len(s) >= 5 for s in shares)  # neither worker is left idle


def test_probe_and_pass_rate_errors_count_their_prompts_and_games(saves):
    """Seeds that read the same prompts can agree exactly: the error over the prompts still counts."""
    import math

    from claims_report import Matrix, comparisons

    from oel_engine.metrics import OodSample

    m = Matrix(saves, claims.matrix([0, 1], ["frozenlake"], ood=1))
    probe = next(c for c in comparisons(m) if c.claim == "e" and c.b_name == "base" and "round 1" in c.a_name)
    run = RunData.load(saves / "fl-main-s0")
    prompts = sum(o.prompts for o in run.log.of(OodSample, round=0, kind=EvalKind.BASE))
    base = run.ood(0, EvalKind.BASE)[0]
    assert prompts > 0 and probe.b_se[0] == pytest.approx(math.sqrt(base * (1 - base) / prompts))
    passes = next(c for c in comparisons(m) if c.claim == "c" and c.metric == "pass_rate")
    summary = run.evaluation(0, EvalKind.BASE)
    n = summary.episodes * summary.samples
    assert passes.b_se[0] == pytest.approx(math.sqrt(summary.pass_rate * (1 - summary.pass_rate) / n))


def test_run_time_counts_a_forks_copied_stages_once():
    from claims_report import _hardware

    from oel_engine.metrics import StageTime

    def run(*stages):
        return logged(*(StageTime(round=0, stage=name, seconds=s) for name, s in stages))

    cells = claims.matrix([0], ["frozenlake"], ood=1)
    runs = {"fl-main-s0": run(("eval_base", 600.0), ("consolidate", 1200.0)),
            "fl-offpolicy-s0": run(("eval_base", 600.0), ("consolidate", 3000.0))}  # its own consolidation only
    text = _hardware(SimpleNamespace(runs=runs, cells=cells))[0]
    assert "took 1.3 h of work in all" in text and "longest fl-offpolicy-s0, 50 min" in text


def test_a_last_round_reading_keeps_its_error(saves):
    """Read at the run's last round, the probe and the pass rate still bring their error over prompts and games."""
    import math

    from claims_report import Matrix, comparisons

    from oel_engine.metrics import OodSample

    m = Matrix(saves, claims.matrix([0, 1], ["frozenlake"], ood=1))
    run = RunData.load(saves / "fl-main-s0")
    last = run.rounds()[-1]
    assert last == 1
    probe = next(c for c in comparisons(m) if c.claim == "e" and "last round" in c.a_name)
    prompts = sum(o.prompts for o in run.log.of(OodSample, round=last, kind=EvalKind.CONSOLIDATED))
    accuracy = run.ood(last, EvalKind.CONSOLIDATED)[0]
    assert prompts > 0 and probe.a_se[0] == pytest.approx(math.sqrt(accuracy * (1 - accuracy) / prompts))

    from claims_report import last_round
    summary = run.evaluation(last, EvalKind.CONSOLIDATED)
    n = summary.episodes * summary.samples
    error = last_round("pass_rate").se_reader(run)
    assert error == pytest.approx(math.sqrt(summary.pass_rate * (1 - summary.pass_rate) / n))



@pytest.mark.parametrize("text", ["3/2", "0/2", "x", "1-2", "1/2/3"])
def test_a_bad_worker_share_is_refused(text):
    with pytest.raises(claims.argparse.ArgumentTypeError):
        claims.worker_of(text)
    assert claims.worker_of("2/3") == (2, 3)

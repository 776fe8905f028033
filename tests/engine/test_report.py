"""`oel report` and `oel compare` on tiny-model runs: Markdown with real PNG charts."""

import pytest

from oel_engine.errors import OelError
from oel_engine.report.data import RunData
from oel_engine.report.markdown import write_comparison, write_report
from oel_engine.round.fork import fork_run
from tests.support import oel, run_rounds, tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def saves(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("saves")
    run_rounds(root, "main", tiny_tokenizer, tiny_config(rounds=2), rounds=2)
    fork_run(root, "main", "off", loss="offpolicy")
    run_rounds(root, "off", tiny_tokenizer, rounds=1)
    return root


def test_a_run_report_has_every_round_and_chart(saves):
    target = write_report(saves / "main")
    text = target.read_text()
    run = RunData.load(saves / "main")
    assert target == saves / "main" / "report" / "report.md"
    for r in (0, 1):
        for policy in ("start policy", "in context", "consolidated"):
            assert f"| {r} | {policy} |" in text
    base = run.evaluation(0, "base")
    assert f"{base.pass_rate:.1%} ± {base.pass_rate_std:.1%}" in text  # the table shows the measured values
    assert run.evaluation(1, "start") is run.evaluation(0, "consolidated")
    charts = [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert {"pass_rate.png", "curve.png", "loss.png", "reverse_kl.png", "topk_mass.png"} <= set(charts)
    for chart in charts:
        assert (target.parent / chart).read_bytes()[:8] == PNG
    assert "What the teacher read in round 0" in text and run.contexts[0][0][:40] in text
    assert "teacher reads experience" in text and "## Settings" in text


def test_a_comparison_sets_the_fork_beside_its_source(saves, tmp_path):
    target = write_comparison([saves / "main", saves / "off"], tmp_path / "cmp")
    text = target.read_text()
    assert "`main`" in text and "`off`" in text and "offpolicy loss" in text
    main, off = RunData.load(saves / "main"), RunData.load(saves / "off")
    # the fork's base and in-context cells are the source's own measurements
    row = lambda name: next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
    assert row("main").split("|")[3:5] == row("off").split("|")[3:5]
    assert off.forked_from["run"] == "main" and main.forked_from is None
    assert (tmp_path / "cmp" / "compare-pass_rate.png").read_bytes()[:8] == PNG
    with pytest.raises(OelError, match="at least two runs"):
        write_comparison([saves / "main"], tmp_path / "one")


def test_report_and_compare_on_the_command_line(saves, tmp_path):
    res = oel("report", "--run", "off", "--saves", str(saves))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Forked from `main`" in (saves / "off" / "report" / "report.md").read_text()
    res = oel("compare", "main", "off", "--out", str(tmp_path / "c"), "--saves", str(saves))
    assert res.returncode == 0 and (tmp_path / "c" / "compare.md").is_file(), res.stderr[-2000:]
    bad = oel("report", "--run", "missing", "--saves", str(saves))
    assert bad.returncode == 2 and "no run folder" in bad.stderr and "Traceback" not in bad.stderr


def test_labels_and_spreads_say_what_a_reader_needs(saves):
    from oel_engine.metrics import EvalSummary
    from oel_engine.report.markdown import _value

    run = RunData.load(saves / "main")
    assert "experience from" not in run.label()
    run.context_source = {0: "file examples/lessons/frozenlake.txt"}
    assert run.label().endswith("experience from the file examples/lessons/frozenlake.txt")
    # the probe reads the same prompts in every sample: its spread is the error over the probed states
    same_prompts = EvalSummary(good_move_prob=0.1, good_move_prob_std=0.0, good_move_prob_se=0.02, pass_rate=0.5)
    assert _value(same_prompts, "good_move_prob") == (0.1, 0.02)
    assert _value(same_prompts, "pass_rate") == (0.5, 0.0)

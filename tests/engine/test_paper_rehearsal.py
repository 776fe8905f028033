"""The paper presets rehearsed end to end on the CPU before anyone pays for a GPU: every stage of
two rounds of `paper-frozenlake` and `paper-sokoban` on a tiny Qwen3-architecture model with
Qwen's bracket merges, every size shrunk through `--set`, as a GPU user's first commands run them.

What a first rehearsal found (each now a line below): the move probe could not read Qwen's
`[left`; a forked paper run could not be resumed with the command `oel fork` prints; the TRL
backend refused full fine-tuning only after extraction, evaluation and collection had run; a
finished TRL run failed at its summary (TRL reports no top-k mass)."""

from __future__ import annotations

import json

from oel_engine.run.store import RunStore
from tests.support import last_json, oel_many

# every size of a paper preset shrunk to seconds; the recipes' structure stays (K runs, N steps
# with the experience of step N/2, T steps, thinking, the update, the held-out seeds)
SHRUNK = [f"--set={a}" for a in (
    "extraction.runs=2", "extraction.steps=2", "extraction.use_step=1", "extraction.budget_tokens=64",
    "extraction.max_new_tokens=16", "extraction.curve_episodes=2", "extraction.curve_every=1",
    "deploy.max_new_tokens=8", "consolidation.steps=2", "consolidation.games_per_step=2",
    "consolidation.max_new_tokens=8", "evaluation.episodes=3", "evaluation.samples=1",
    "evaluation.sampling.max_new_tokens=8",
    "model.inference_dtype=float32",  # not measured at load: the CPU's speed must not decide a test
)]


def every_round_read_the_probe(summary: dict, rounds: int) -> None:
    assert [r["round"] for r in summary["rounds"]] == list(range(rounds))
    for entry in summary["rounds"]:
        kinds = ("base", "in_context", "consolidated") if entry["round"] == 0 else ("in_context", "consolidated")
        for kind in kinds:
            assert 0.0 < entry[kind]["good_move_prob"] < 1.0, (entry["round"], kind)
        assert entry["consolidation"]["steps"] == 2


def test_paper_frozenlake_rehearsed_with_thinking_full_fine_tuning_and_the_off_policy_fork(tmp_path, qwen_folder):
    saves = ["--saves", str(tmp_path)]
    evaluated, loop, fork, resumed, report = oel_many(
        ["eval", "--policy", "model", "--model", str(qwen_folder), "--episodes", "3", "--max-new-tokens", "8", "--json"],
        ["loop", "--preset", "paper-frozenlake", "--run", "fl", "--model", str(qwen_folder), *SHRUNK, "--json", *saves],
        ["fork", "--run", "fl", "--as", "fl-off", "--loss", "offpolicy", *saves],
        ["loop", "--run", "fl-off", "--json", *saves],  # as `oel fork` says to run it
        ["report", "--run", "fl", *saves],
    )
    assert 0.0 < last_json(evaluated)["good_move_prob"] < 1.0  # `oel eval` on the paper's tokenizer
    every_round_read_the_probe(last_json(loop), 2)
    with RunStore(tmp_path, "fl", readonly=True) as store:
        config = store.meta()["config"]
    assert config["model"]["thinking"] is True and config["consolidation"]["update"] == "full"
    assert config["evaluation"]["held_out"] == "reference"  # the reference's maps, 468460046 + 1000 i
    for r in (0, 1):  # full fine-tuning leaves whole models, no adapters
        folder = tmp_path / "fl" / "adapters" / f"round-{r}"
        assert (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    assert "fl-off" in fork.stdout and "oel loop --run fl-off" in " ".join(fork.stdout.split())
    forked = last_json(resumed)
    every_round_read_the_probe(forked, 2)
    with RunStore(tmp_path, "fl-off", readonly=True) as store:
        assert store.meta()["config"]["consolidation"]["loss"] == "offpolicy"
    assert report.returncode == 0 and (tmp_path / "fl" / "report" / "report.md").is_file()


def test_paper_sokoban_rehearsed_through_trl_with_the_instruction_probe(tmp_path, qwen_folder):
    """Thinking off, structured items that see earlier experience, the instruction probe on the
    base and each consolidated model; TRL's trainer does the consolidation (it trains LoRA: the
    full-fine-tuning recipe is refused before any work, with the setting that runs it)."""
    saves = ["--saves", str(tmp_path)]
    model = ["--model", str(qwen_folder)]
    refused, loop, report = oel_many(
        ["loop", "--preset", "paper-sokoban", "--run", "refused", "--backend", "trl", *model, *saves],
        ["loop", "--preset", "paper-sokoban", "--rounds", "2", "--run", "so", "--backend", "trl", *model, *SHRUNK,
         "--set=consolidation.update=lora", "--set=evaluation.ood_samples=1", "--set=evaluation.ood_max_new_tokens=4",
         "--json", *saves],
        ["report", "--run", "so", *saves],
    )
    assert refused.returncode == 2 and "set consolidation.update=lora" in " ".join(refused.stderr.split())
    assert not (tmp_path / "refused").exists()
    summary = last_json(loop)
    every_round_read_the_probe(summary, 2)
    assert all(r["consolidation"]["mean_topk_mass"] is None for r in summary["rounds"])  # TRL does not report it
    with RunStore(tmp_path, "so", readonly=True) as store:
        config = store.meta()["config"]
        assert config["model"]["thinking"] is False and config["extraction"]["accumulate"] is True
        metrics = [json.loads(line) for line in (tmp_path / "so" / "metrics.jsonl").read_text().splitlines()]
    ood = {(m["round"], m["kind"]) for m in metrics if m.get("phase") == "ood"}
    assert ood == {(0, "base"), (0, "consolidated"), (1, "consolidated")}
    assert report.returncode == 0 and "top-k mass" in (tmp_path / "so" / "report" / "report.md").read_text()

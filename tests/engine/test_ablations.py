"""The ablations of the claims matrix as run options: raw trajectories as the teacher's context,
and a run forked from another one at a stage (the same games, a different consolidation)."""

import json
from dataclasses import replace

import pytest

from oel_engine.config import LoopConfig
from oel_engine.errors import OelError
from oel_engine.experience.extraction import trajectories_context
from oel_engine.play.trajectory import Episode, Outcome, PolicyInfo, Turn
from oel_engine.round import RoundRunner
from oel_engine.run.loop_config import open_loop_run
from tests.support import new_lm, run_rounds, tiny_config


def game(i: int, turns: int = 2) -> Episode:
    e = Episode(game="frozenlake", game_options={}, seed=i, policy=PolicyInfo("model", "tiny"), episode_id=f"g{i}")
    for t in range(turns):
        e.turns.append(Turn(index=t, prompt=[{"role": "user", "content": f"Current situation:\nmap {i}\n\nWhat action"}],
                            response=f"I go [down] in game {i}", action="down", valid=True, feedback=f"moved {i}"))
    e.outcome = Outcome(success=i % 2 == 0, reward=1.0, reason=f"reason {i}")
    return e


def words(text: str) -> int:
    return len(text.split())


def test_trajectories_context_keeps_the_newest_whole_games_oldest_first():
    games = [game(i) for i in range(5)]
    whole = trajectories_context(games, 10_000, words)
    assert whole.index("Game 1:") < whole.index("Game 5:") and "reason 4" in whole
    one = words(trajectories_context(games[:1], 10_000, words))
    budget = 2 * one + 5  # room for two games, not three
    cut = trajectories_context(games, budget, words)
    assert words(cut) <= budget
    assert "Game 4:" in cut and "Game 5:" in cut and "Game 3:" not in cut
    assert cut.index("Game 4:") < cut.index("Game 5:")


def test_trajectories_context_cuts_a_single_long_game_from_the_front():
    long = game(7, turns=30)
    text = trajectories_context([long], 40, words)
    assert 0 < words(text) <= 40
    assert text.endswith("Final result: FAILURE. reason 7")  # the result survives the cut
    assert trajectories_context([], 40, words) == ""


def trajectories_config() -> LoopConfig:
    base = tiny_config()
    return replace(base, consolidation=replace(base.consolidation, teacher_context="trajectories"))


def test_a_run_with_raw_trajectories_as_the_teachers_context(tmp_path, tiny_tokenizer):
    config = trajectories_config()
    store, config = open_loop_run(tmp_path, "r", config)
    try:
        runner = RoundRunner(store, config, new_lm(tiny_tokenizer))
        runner.run(1)
        shown_in_context = runner.ctx.teacher(0).texts  # what the in-context evaluation read
    finally:
        store.close()
    run = tmp_path / "r"
    data = [json.loads(line) for line in (run / "consolidation" / "round-0.jsonl").read_text().splitlines()]
    contexts = {d["experience_run"]: d["privileged_context"] for d in data}
    assert data and {d["experience_source"] for d in data} == {"raw trajectories"}
    budget, step = config.extraction.budget_tokens, config.extraction.consolidation_step
    for k, text in contexts.items():
        assert "Final result:" in text and "Move taken:" in text
        assert len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) <= budget
    assert shown_in_context == [contexts[k] for k in sorted(contexts)]
    games = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    # the context is run k's own games up to the experience step: its answers appear in it
    extract = {g["episode_id"]: g for g in games if g["stage"] == "extract"}
    own = extract[f"r0-extract-run0-step{step:03d}"]["turns"][-1]["response"].strip()
    if own:
        assert own in contexts[0]


def test_a_bad_teacher_context_is_refused():
    with pytest.raises(OelError, match="teacher context"):
        replace(tiny_config(), consolidation=replace(tiny_config().consolidation, teacher_context="games")).validate()


def stage_times(run_dir) -> list[tuple[int, str]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(m["round"], m["stage"]) for m in rows if m.get("phase") == "stage"]


def test_a_fork_keeps_the_sources_games_and_redoes_only_what_its_settings_change(tmp_path, tiny_tokenizer):
    from oel_engine.fileio import read_jsonl
    from oel_engine.metrics import EvalKind, EvalSummary, MetricsLog
    from oel_engine.round.fork import fork_run

    run_rounds(tmp_path, "src", tiny_tokenizer, tiny_config())
    src = tmp_path / "src"
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file() and p.name != ".lock"}

    config = fork_run(tmp_path, "src", "fullkl", loss="full")
    assert config.consolidation.loss == "full"
    fork = tmp_path / "fullkl"
    assert not (fork / "adapters" / "round-0").exists() and not (fork / "consolidation" / "round-0.jsonl").exists()
    assert (fork / "experience" / "round-0").is_dir()
    run_rounds(tmp_path, "fullkl", tiny_tokenizer)
    # only consolidation and its evaluation ran again; the collected games are the source's own
    assert stage_times(fork)[-2:] == [(0, "consolidate"), (0, "eval_consolidated")]
    assert stage_times(fork)[:-2] == stage_times(src)[:-2]
    collected = lambda d: sorted(g["episode_id"] + g["turns"][0]["response"]
                                 for g in read_jsonl(d / "trajectories.jsonl")[0] if g["stage"] == "collect")
    assert collected(fork) == collected(src) and collected(src)
    kinds = lambda d: [(s.kind, s.pass_rate) for s in MetricsLog.from_dicts(read_jsonl(d / "metrics.jsonl")[0]).of(EvalSummary)]
    assert kinds(fork)[:2] == kinds(src)[:2]  # the base and in-context rows are the very same measurements
    assert [k for k, _ in kinds(fork)] == [EvalKind.BASE, EvalKind.IN_CONTEXT, EvalKind.CONSOLIDATED]
    assert {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file() and p.name != ".lock"} == before

    fork_run(tmp_path, "src", "traj", teacher_context="trajectories")
    run_rounds(tmp_path, "traj", tiny_tokenizer)
    assert [s for _, s in stage_times(tmp_path / "traj")[-3:]] == ["eval_in_context", "consolidate", "eval_consolidated"]
    data = [json.loads(line) for line in (tmp_path / "traj" / "consolidation" / "round-0.jsonl").read_text().splitlines()]
    assert {d["experience_source"] for d in data} == {"raw trajectories"}


def test_the_off_policy_baseline_learns_from_games_the_teacher_plays(tmp_path, tiny_tokenizer, monkeypatch):
    """As the reference runs it: the teacher (the round's policy with one of the K experiences)
    plays the round's games, and the student trains on the teacher's own answers, its prompts
    without the experience (forward KL over the teacher's top-k)."""
    from oel_engine.consolidation.trainer import Distiller
    from oel_engine.fileio import read_jsonl
    from oel_engine.play.prompts import insert_experience
    from oel_engine.round.fork import fork_run

    run_rounds(tmp_path, "src", tiny_tokenizer, tiny_config())
    fork_run(tmp_path, "src", "off", loss="offpolicy")
    sampled = []
    original = Distiller.sample
    monkeypatch.setattr(Distiller, "sample", lambda self, *a, **k: sampled.append(1) or original(self, *a, **k))
    run_rounds(tmp_path, "off", tiny_tokenizer)
    assert [s for _, s in stage_times(tmp_path / "off")[-3:]] == ["collect", "consolidate", "eval_consolidated"]
    assert not sampled  # no answer was sampled while consolidating: the teacher's own are learnt
    games = {g["episode_id"]: g for g in read_jsonl(tmp_path / "off" / "trajectories.jsonl")[0] if g["stage"] == "collect"}
    data = [json.loads(line) for line in (tmp_path / "off" / "consolidation" / "round-0.jsonl").read_text().splitlines()]
    assert games and len(data) == sum(len(g["turns"]) for g in games.values())
    for d in data:
        game = games[d["episode_id"]]
        turn = game["turns"][d["turn"]]
        assert game["tags"]["experience_run"] == d["experience_run"]
        assert turn["prompt"] == insert_experience(d["prompt"], d["privileged_context"])  # played with it
        assert d["prompt"] != turn["prompt"] and d["response"] == turn["response"]  # learnt without it
    assert len({d["experience_run"] for d in data}) == 2  # both of the K = 2 experiences played


def test_fork_refuses_what_it_cannot_do(tmp_path, tiny_tokenizer):
    from oel_engine.round.fork import fork_run

    with pytest.raises(OelError, match="no run named"):
        fork_run(tmp_path, "nope", "f", loss="offpolicy")
    store, _ = open_loop_run(tmp_path, "src", tiny_config())
    store.close()
    with pytest.raises(OelError, match="at least one changed setting"):
        fork_run(tmp_path, "src", "f")
    with pytest.raises(OelError, match="loss must be"):
        fork_run(tmp_path, "src", "f", loss="bogus")
    with pytest.raises(OelError, match="unknown consolidation setting"):
        fork_run(tmp_path, "src", "f", colour="red")
    with pytest.raises(OelError, match="exists already"):
        fork_run(tmp_path, "src", "src", loss="offpolicy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing half-made left behind


def test_oel_fork_on_the_command_line(tmp_path, tiny_tokenizer):
    from tests.support import oel

    store, _ = open_loop_run(tmp_path, "src", tiny_config())
    store.close()
    res = oel("fork", "--run", "src", "--as", "lower", "--lr", "0.0005", "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "oel loop --run lower" in res.stdout and "consolidate, eval_consolidated" in res.stdout
    meta = next(iter(json.loads((tmp_path / "lower" / "index.json").read_text())["meta"].values()))
    assert meta["config"]["consolidation"]["learning_rate"] == 0.0005 and meta["forked_from"]["run"] == "src"
    bad = oel("fork", "--run", "src", "--as", "x2", "--teacher-context", "games", "--saves", str(tmp_path))
    assert bad.returncode == 2 and "teacher context must be" in bad.stderr and "Traceback" not in bad.stderr


def test_a_fork_can_leave_out_the_instruction_probe_its_source_ran(tmp_path, tiny_tokenizer):
    """An ablation whose probe no comparison reads (the claims matrix's raw-trajectories fork)
    skips it; the source keeps its own setting, and a bad seed count is one clear error."""
    from tests.support import oel

    probed = replace(tiny_config(), evaluation=replace(tiny_config().evaluation, ood_samples=1))
    store, _ = open_loop_run(tmp_path, "src", probed)
    store.close()
    meta = lambda run: next(iter(json.loads((tmp_path / run / "index.json").read_text())["meta"].values()))
    res = oel("fork", "--run", "src", "--as", "traj", "--teacher-context", "trajectories", "--ood", "0",
              "--saves", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "0 instruction-probe seeds" in " ".join(res.stdout.split())  # rich wraps lines
    fork = meta("traj")
    assert fork["config"]["evaluation"]["ood_samples"] == 0 and fork["forked_from"]["ood_samples"] == 0
    assert fork["config"]["consolidation"]["teacher_context"] == "trajectories"
    assert meta("src")["config"]["evaluation"]["ood_samples"] == 1
    kept = oel("fork", "--run", "src", "--as", "off", "--loss", "offpolicy", "--saves", str(tmp_path))
    assert kept.returncode == 0 and meta("off")["config"]["evaluation"]["ood_samples"] == 1
    assert "ood_samples" not in meta("off")["forked_from"]
    from oel_engine.session import Engine

    with pytest.raises(OelError, match="only consolidation settings"):
        Engine(tmp_path).fork("src", "y", 0, ["consolidation.loss=full", "evaluation.episodes=4"])
    bad = oel("fork", "--run", "src", "--as", "x", "--loss", "full", "--ood", "12", "--saves", str(tmp_path))
    assert bad.returncode == 2 and "instruction probe seeds must be 0-9" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()

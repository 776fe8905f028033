import json
import os

import pytest

from oel_engine.config import GameConfig
from oel_engine.errors import OelError
from oel_engine.fileio import atomic_write_text, read_jsonl
from oel_engine.play.policies import RandomPolicy
from oel_engine.play.rollout import play_episodes
from oel_engine.play.trajectory import Episode
from oel_engine.run.listing import list_runs, summarize_run
from oel_engine.run.store import RunStore, load_episodes, saves_root


def some_episodes(n=3, seed=0):
    return play_episodes(GameConfig(), list(range(seed, seed + n)), RandomPolicy(seed))


def test_episodes_round_trip(tmp_path):
    episodes = some_episodes()
    with RunStore(tmp_path, "r1") as store:
        store.set_meta(game="frozenlake", model="random")
        store.add_episodes(episodes[:2])
        store.add_episodes(episodes[2:])
    loaded = load_episodes(tmp_path / "r1")
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in episodes]
    lines = (tmp_path / "r1" / "trajectories.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert {"game", "seed", "policy", "turns", "outcome", "round"} <= set(first)
    assert {"prompt", "response", "action", "feedback"} <= set(first["turns"][0])
    summary = summarize_run(tmp_path / "r1")
    assert summary.episodes == 3 and summary.game == "frozenlake"
    assert summary.wins == sum(e.success for e in episodes)


def test_atomic_write_keeps_old_content_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_one_writer_per_run(tmp_path):
    with RunStore(tmp_path, "busy"):
        with pytest.raises(OelError, match="busy in this app"):
            RunStore(tmp_path, "busy")
    RunStore(tmp_path, "busy").close()  # free again after close


def test_corrupt_trajectory_line_is_skipped_and_counted(tmp_path):
    with RunStore(tmp_path, "r") as store:
        store.add_episodes(some_episodes(2))
    path = tmp_path / "r" / "trajectories.jsonl"
    path.write_text(path.read_text() + '{"truncated": \n')
    records, bad = read_jsonl(path)
    assert len(records) == 2 and bad == 1
    assert len(load_episodes(tmp_path / "r")) == 2


def test_corrupt_index_is_kept_and_rebuilt(tmp_path):
    episodes = some_episodes(3)
    with RunStore(tmp_path, "r") as store:
        store.add_episodes(episodes)
    (tmp_path / "r" / "index.json").write_text("{not json")
    assert "unreadable" in summarize_run(tmp_path / "r").problem
    with RunStore(tmp_path, "r") as store:
        assert len(store.episode_rows()) == 3 and store.has_episode(episodes[0].episode_id)
    assert any(p.name.startswith("index.json.corrupt-") for p in (tmp_path / "r").iterdir())


def test_bad_run_names_and_missing_runs(tmp_path):
    with pytest.raises(OelError):
        RunStore(tmp_path, "../escape")
    with pytest.raises(OelError, match="no run"):
        RunStore(tmp_path, "absent", create=False)


def test_saves_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("OEL_SAVES", str(tmp_path / "env"))
    assert saves_root() == tmp_path / "env"
    assert saves_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("OEL_SAVES")
    assert str(saves_root()) == "saves"


def test_list_runs(tmp_path):
    for name in ("b", "a"):
        with RunStore(tmp_path, name) as store:
            store.add_episodes(some_episodes(1))
    assert [r.name for r in list_runs(tmp_path)] == ["a", "b"]
    assert list_runs(tmp_path / "none") == []


def test_episode_from_dict_round_trip():
    e = some_episodes(1)[0]
    assert Episode.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_append_is_a_real_append_and_cuts_a_torn_line(tmp_path):
    from oel_engine.fileio import append_jsonl

    path = tmp_path / "m.jsonl"
    append_jsonl(path, [{"a": 1}])
    inode = path.stat().st_ino
    path.write_bytes(path.read_bytes() + b'{"torn": ')  # a crash in the middle of a write
    append_jsonl(path, [{"b": 2}])
    assert path.stat().st_ino == inode  # appended in place, not rewritten through a temp file
    assert read_jsonl(path) == ([{"a": 1}, {"b": 2}], 0)


def test_opening_a_run_reads_the_id_index_not_the_trajectories(tmp_path, monkeypatch):
    with RunStore(tmp_path, "r") as store:
        store.add_episodes(some_episodes(3))

    def no_parsing(*_):
        raise AssertionError("trajectories were parsed")

    monkeypatch.setattr(Episode, "from_dict", classmethod(no_parsing))
    with RunStore(tmp_path, "r") as store:
        assert len(store.episode_rows()) == 3
        assert summarize_run(tmp_path / "r").episodes == 3


def test_a_crash_between_trajectory_and_index_appends_is_repaired(tmp_path):
    episodes = some_episodes(3)
    with RunStore(tmp_path, "r") as store:
        store.add_episodes(episodes[:2])
    index = tmp_path / "r" / "episodes.jsonl"
    lines = index.read_text().splitlines()
    index.write_text(lines[0] + "\n")  # the second game's index row never made it
    with RunStore(tmp_path, "r") as store:
        assert [r["episode_id"] for r in store.episode_rows()] == [e.episode_id for e in episodes[:2]]
        assert store.add_episodes(episodes[1:]) == 1  # the second is known, only the third is new
        picked = store.episodes(where=lambda row: row["episode_id"] == episodes[1].episode_id)
    assert [e.to_dict() for e in picked] == [episodes[1].to_dict()]
    assert len(load_episodes(tmp_path / "r")) == 3


def test_metrics_are_typed_and_old_eval_samples_still_read():
    from oel_engine.metrics import (
        ConsolidateStep,
        EvalSample,
        EvalSummary,
        MetricsLog,
        mean_sd,
    )

    log = MetricsLog.from_dicts([
        {"phase": "eval", "round": 0, "kind": "base", "sample": 1, "pass_rate": 0.5, "episodes": 4},  # old layout
        {"phase": "eval", "round": 0, "kind": "base", "samples": 2, "pass_rate": 0.25, "game": "frozenlake"},
        {"phase": "consolidate", "round": 0, "step": 3, "loss": 0.1, "skipped": False},
        {"phase": "something-new", "round": 0},
    ])
    assert [type(r) for r in log.records] == [EvalSample, EvalSummary, ConsolidateStep]
    assert log.of(EvalSample, kind="base")[0].sample == 1
    summary = log.last(EvalSummary)
    assert summary.extra == {"game": "frozenlake"} and summary.to_dict()["game"] == "frozenlake"
    assert ConsolidateStep.from_dict(log.of(ConsolidateStep)[0].to_dict()) == log.of(ConsolidateStep)[0]
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(1.4142135))
    assert mean_sd([]) == (0.0, 0.0) and mean_sd([2.0]) == (2.0, 0.0)


def test_a_run_saved_before_the_id_index_gets_every_game_indexed_once(tmp_path):
    episodes = some_episodes(3)
    with RunStore(tmp_path, "r") as store:
        store.add_episodes(episodes)
    (tmp_path / "r" / "episodes.jsonl").unlink()  # as a run written by an older version
    with RunStore(tmp_path, "r") as store:
        assert all(store.has_episode(e.episode_id) for e in episodes)
        assert store.add_episodes(episodes) == 0
    rows = read_jsonl(tmp_path / "r" / "episodes.jsonl")[0]
    assert [r["episode_id"] for r in rows] == [e.episode_id for e in episodes]
    assert all(isinstance(r["start"], int) and r["end"] > r["start"] for r in rows)


def test_the_listing_counts_rounds_by_the_rounds_last_stage():
    from oel_engine.round import ROUND
    from oel_engine.run.listing import LAST_STAGE, rounds_done

    assert LAST_STAGE == ROUND[-1]().name
    rows = [{"round": 0, "stage": s().name} for s in ROUND] + [{"round": 1, "stage": ROUND[0]().name}]
    assert rounds_done(rows) == 1


def test_a_run_saved_before_the_probe_spellings_setting_keeps_reading_the_four_words(tmp_path):
    """Its probe numbers were read as `words`; reading them on as `all` would mix two readings in
    one run. A new run reads `all`."""
    from oel_engine.config import EvalConfig, LoopConfig, to_dict
    from oel_engine.run.loop_config import open_loop_run, read_config

    store, config = open_loop_run(tmp_path, "new", LoopConfig(rounds=1))
    with store:
        assert config.evaluation.probe_spellings == "all" == read_config(store).evaluation.probe_spellings
    old = to_dict(LoopConfig(rounds=1))
    del old["evaluation"]["probe_spellings"]
    with RunStore(tmp_path, "old") as store:
        store.set_meta(config=old, game="frozenlake", model="embedded", preset="custom")
    store, config = open_loop_run(tmp_path, "old", LoopConfig(rounds=1))
    with store:
        assert config.evaluation.probe_spellings == "words" == read_config(store).evaluation.probe_spellings
    with pytest.raises(OelError, match="the probe's spellings must be one of all, words"):
        LoopConfig(evaluation=EvalConfig(probe_spellings="some")).validate()

import json
import os

import pytest

from oel_engine.config import GameConfig
from oel_engine.errors import OelError
from oel_engine.policies import RandomPolicy
from oel_engine.rollout import play_episodes
from oel_engine.storage import (
    RunStore, atomic_write_text, list_runs, load_episodes, read_jsonl, saves_root, summarize_run,
)
from oel_engine.trajectory import Episode


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
        with pytest.raises(OelError, match="in use"):
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
        assert len(store.db.table("episodes")) == 3
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

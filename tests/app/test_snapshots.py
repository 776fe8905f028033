"""Snapshot tests of the main screens (pytest-textual-snapshot). Update with --snapshot-update."""

from pathlib import Path

from oel_engine.config import GameConfig
from oel_tui.app import OelApp, Settings
from tests.support.fake_engine import FakeEngine

FIXED = Path("/nonexistent/saves")  # the fake engine never touches it; keeps the SVGs stable


def app(game="frozenlake", rounds_done=0):
    engine = FakeEngine(FIXED)
    engine.rounds_done = rounds_done
    return OelApp(engine=engine, settings=Settings(game=GameConfig(name=game), run="demo"))


def test_start_screen(snap_compare):
    assert snap_compare(app(), terminal_size=(80, 24))


def test_play_screen_frozenlake(snap_compare):
    assert snap_compare(app(), press=["2", "right", "down"], terminal_size=(100, 30))


def test_play_screen_versus(snap_compare):
    assert snap_compare(app(rounds_done=1), press=["2", "v", "space"], terminal_size=(100, 30))


def test_play_screen_sokoban(snap_compare):
    assert snap_compare(app("sokoban"), press=["2"], terminal_size=(100, 30))


def test_experience_screen(snap_compare):
    assert snap_compare(app(), press=["3"], terminal_size=(100, 24))


def test_rounds_screen(snap_compare):
    assert snap_compare(app(), press=["4"], terminal_size=(100, 30))


def test_help_screen(snap_compare):
    assert snap_compare(app(), press=["question_mark"], terminal_size=(100, 30))


def test_replay_screen(snap_compare):
    assert snap_compare(app(), press=["5", "n"], terminal_size=(100, 30))

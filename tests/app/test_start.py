"""The Start screen as a newcomer meets it, `--run NEW`, no folder left by a failed start, and the
help screen laid out for the terminal's width."""

import math

from rich.console import Console

from oel_engine.config import GameConfig
from oel_tui.app import OelApp, Settings
from oel_tui.screens.help import SECTIONS, help_renderable
from tests.support.fake_engine import FakeEngine


def status(app) -> str:
    return str(app.screen.query_one("#run-status").render())


def newcomer(tmp_path) -> FakeEngine:
    engine = FakeEngine(tmp_path)
    engine.listed = []  # no runs yet
    return engine


async def test_enter_in_the_name_field_creates_the_run(tmp_path):
    app = OelApp(engine=newcomer(tmp_path), settings=Settings(game=GameConfig()))
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.focused is app.screen.query_one("#run-name")  # what a newcomer types first has focus
        await pilot.press(*"fresh", "enter")
        await pilot.pause()
        assert app.settings.run == "fresh" and "fresh" in app.engine.created
        assert "Current run: fresh" in status(app)
        assert "fresh" in app.screen.run_names  # listed at once
        assert app.focused is app.screen.query_one("#runs")  # out of the field: 1-5 switch screens again
        await pilot.press("4")
        assert app.screen.__class__.__name__ == "RoundsScreen"


async def test_someone_with_runs_starts_on_the_run_list(tmp_path):
    app = OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig()))
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.focused is app.screen.query_one("#runs")
        await pilot.press("2")
        assert app.screen.__class__.__name__ == "PlayScreen"


async def test_a_bad_or_taken_name_gets_one_line_and_no_run(tmp_path):
    app = OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig()))
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#run-name").focus()
        await pilot.press(*"no/slash", "enter")
        await pilot.pause()
        assert "bad run name" in status(app) and "\n" not in status(app).strip()
        assert app.settings.run is None and not app.engine.created
        app.screen.query_one("#run-name").value = ""
        await pilot.press(*"demo", "enter")
        await pilot.pause()
        assert "exists already" in status(app) and app.settings.run is None


async def test_tab_follows_the_layout_top_to_bottom(tmp_path):
    app = OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig()))
    async with app.run_test(size=(100, 40)) as pilot:
        app.screen.query_one("#game").focus()
        await pilot.pause()
        seen = []
        for _ in range(6):
            seen.append(app.focused.id)
            await pilot.press("tab")
        assert seen == ["game", "model", "load", "runs", "run-name", "create"]


async def test_run_new_fills_the_name_and_starts_nothing(tmp_path):
    app = OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig(), run="brand-new"))
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.screen.query_one("#run-name").value == "brand-new"
        assert "does not exist yet" in status(app) and "press Enter" in status(app)
        assert app.settings.run is None
        await pilot.press("escape")  # out of the field, where 4 would be typed
        await pilot.press("4")
        await pilot.press("g")  # no run: no stage starts
        await pilot.pause()
        assert not app.jobs.busy and app.engine.stage_calls == []
        await pilot.press("1")
        app.screen.query_one("#run-name").focus()
        await pilot.press("enter")  # the name is there: Enter creates it
        await pilot.pause()
        assert app.settings.run == "brand-new"
        assert app.focused is app.screen.query_one("#runs")  # digits switch screens again


async def test_a_stage_for_a_run_that_is_not_there_leaves_no_folder(tmp_path):
    """The real engine and worker launcher: no worker starts and nothing is written."""
    app = OelApp(saves=tmp_path, settings=Settings(game=GameConfig(), run="ghost"))
    async with app.run_test(size=(100, 32)) as pilot:
        app.settings.run = "ghost"  # as if chosen some other way
        await pilot.press("escape")
        await pilot.press("4")
        await pilot.press("g")
        await pilot.pause()
        assert not app.jobs.busy
    assert not (tmp_path / "ghost").exists() and list(tmp_path.iterdir()) == []


def test_the_worker_launcher_never_makes_a_run_folder(tmp_path):
    import pytest

    from oel_engine.errors import OelError
    from oel_engine.events import StopFlag
    from oel_tui.worker_process import StageProcesses

    with pytest.raises(OelError, match="no run named 'ghost'"):
        StageProcesses(tmp_path).run_stage("ghost", "round", lambda e: None, StopFlag())
    assert not (tmp_path / "ghost").exists()


def test_a_folder_that_holds_no_run_is_listed_as_not_a_run(tmp_path):
    from oel_engine.run.listing import list_runs

    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "worker.log").write_text("--- a start that failed ---\n")
    [summary] = list_runs(tmp_path)
    assert summary.problem.startswith("not a run")


def rendered_lines(width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(help_renderable())
    return console.export_text().splitlines()


def test_the_help_wraps_once_at_any_width():
    """Every paragraph takes the lines its length needs at this width, not one per line break of
    the source (the old text, broken by hand at 75 columns, wrapped again in a narrow terminal)."""
    notes = [n for _, _, ns in SECTIONS for n in ns]
    for width in (60, 100, 160):
        text = " ".join(" ".join(rendered_lines(width)).split())
        for _, keys, ns in SECTIONS:
            for key, what in keys:
                assert " ".join(what.split()[:3]) in text
            for note in ns:
                assert " ".join(note.split()) in text  # whole, in order
        lines = rendered_lines(width)
        longest = max(notes, key=len)
        first = next(i for i, line in enumerate(lines) if line.strip() and longest.startswith(line.strip()))
        used = next((j for j in range(first, len(lines)) if not lines[j].strip() or lines[j].strip()[:1].isupper()
                     and j > first), len(lines)) - first
        assert used <= math.ceil(len(longest) / (width * 0.8)) + 1, (width, used)

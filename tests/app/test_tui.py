"""Pilot tests of every screen, driven by a fake engine (no torch)."""


import pytest

from oel_engine.config import GameConfig
from oel_tui.app import OelApp, Settings
from oel_tui.widgets.board import BoardView
from tests.support.fake_engine import FakeEngine


def plain(static) -> str:
    """What a Static shows, as plain text (it may hold a rich renderable such as a Group)."""
    from rich.console import Console

    console = Console(width=100, record=True, file=open("/dev/null", "w"))
    console.print(static.content)
    return console.export_text()


def make_app(tmp_path, run="demo"):
    return OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig(), run=run))


async def test_start_screen_lists_runs_and_loads_a_model(tmp_path):
    app = make_app(tmp_path, run=None)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one("#runs")
        assert table.row_count == 1
        app.screen.query_one("#model").value = "tiny-model"
        await pilot.press("l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.engine.loaded == "tiny-model"
        assert "Loaded: tiny-model" in str(app.screen.query_one("#model-status").render())


async def test_model_that_cannot_load_gives_a_clear_message(tmp_path):
    app = make_app(tmp_path, run=None)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#model").value = "broken"
        app.screen.query_one("#model").focus()
        await pilot.press("enter")  # Enter in the model field loads it
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "cannot load model 'broken'" in str(app.screen.query_one("#model-status").render())


async def test_play_screen_person_and_agent_on_the_same_map(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert screen.agent_game.board() == screen.human_game.board()
        await pilot.press("right")  # the person moves
        assert screen.human_game.turns == 1
        assert screen.human.query_one(BoardView).board.player == (0, 1)
        await pilot.press("space")  # the agent moves (in a worker)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.agent_game.turns == 1
        assert "action: [right]" in screen.agent_a.log_view.text()
        await pilot.press("n")
        assert screen.seed == 1 and screen.human_game.turns == 0


async def test_person_games_are_saved_as_human_trajectories(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        for _ in range(5):
            await pilot.press("up")  # walking into the wall: the game ends after two invalid moves
    [(run, episode)] = app.engine.human_games
    assert run == "demo" and episode.policy.kind == "human"
    assert episode.turns[0].prompt[-1]["content"].startswith("You are an agent")
    assert not episode.turns[0].valid


async def test_a_game_played_with_no_run_is_saved_in_a_new_run_and_says_so(tmp_path):
    """Defect: with no run chosen, a person's game was silently not saved."""
    app = make_app(tmp_path, run=None)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        for _ in range(5):
            await pilot.press("up")
        await pilot.pause()
        [(run, episode)] = app.engine.human_games
        assert app.settings.run == run == "play-new"
        assert any("saved in a new run, play-new" in str(n.message) for n in app._notifications)


async def test_experience_screen_disable_and_edit(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("3")
        table = app.screen.query_one("#items")
        assert table.row_count == 2
        await pilot.press("e")
        assert app.engine.items[0].enabled is False
        await pilot.press("enter")
        await pilot.pause()
        app.screen.query_one("#edit-input").value = "Holes are deadly."
        await pilot.press("enter")
        await pilot.pause()
        assert app.engine.items[0].text == "Holes are deadly." and app.engine.items[0].edited


async def test_rounds_screen_runs_a_stage_and_keys_work_while_it_runs(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("4")
        await pilot.press("k")
        await pilot.pause()
        assert app.jobs.busy  # the fake stage waits for us
        await pilot.press("?")  # a key handled while the worker runs
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        app.engine.release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        loss, kl = screen.query_one("#loss-chart").series
        assert (loss.label, loss.x, loss.y) == ("loss", [1, 2, 3], [1.0, 0.5, 1.0 / 3])
        assert kl.y == [0.5, 0.25, 0.5 / 3]
        assert "finished" in str(screen.query_one("#stage-label").render())
        assert screen.query_one("#results").row_count == 1
        [base] = screen.query_one("#pass-chart").series  # the base pass rate so far; nothing else yet
        assert (base.label, base.x, base.y) == ("base", [0], [0.1])
        await pilot.press("t")
        assert screen.query_one("#chart-tabs").active == "training"


async def test_cancel_stops_within_one_unit(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("4")
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("c")
        app.engine.release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not app.jobs.busy
        assert "stopped" in str(app.screen.query_one("#stage-label").render())
        assert len([m for m in app.engine.metrics if m["phase"] == "consolidate"]) <= 1


async def test_works_at_80x24(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "1234":
            await pilot.press(key)
            await pilot.pause()
        assert app.screen.__class__.__name__ == "RoundsScreen"


async def test_quitting_during_a_round_stops_it_cleanly(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("4")
        await pilot.press("k")
        await pilot.pause()
        assert app.jobs.busy
        await pilot.press("q")
        await pilot.pause()
    assert app.jobs.stop.is_set() and not app.jobs.busy
    assert app.engine.stage_calls == ["consolidate"]
    assert not [m for m in app.engine.metrics if m["phase"] == "consolidate"]  # stopped before a unit finished


async def test_play_screen_shows_move_probabilities_every_agent_turn(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await app.workers.wait_for_complete()
        await pilot.pause()
        bars = app.screen.agent_a.bars
        columns, good = bars.shown
        assert columns["student"].probs["up"] == 0.4 and columns["teacher"].probs["down"] == 0.45  # the run has experience
        assert good == ["right"]  # seed 0: going down ends beside a hole in the bottom row
        rendered = plain(bars)
        assert "right ✓" in rendered and "down  ✓" not in rendered
        probed = app.engine.probed
        await pilot.press("space")  # an agent turn, then the probe of the new state
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.engine.probed == probed + 1
        assert app.screen.agent_game.turns == 1


async def test_play_screen_without_experience_shows_the_student_alone(tmp_path):
    app = make_app(tmp_path)
    app.engine.items, app.engine.loaded = [], "fake-model"
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await app.workers.wait_for_complete()
        await pilot.pause()
        columns, _ = app.screen.agent_a.bars.shown
        assert list(columns) == ["student"] and "no teacher" in plain(app.screen.agent_a.bars)


async def add_lesson(app, pilot, text: str):
    """On the Experience screen, write a lesson with `n` and Enter; returns the items table."""
    await pilot.press("3")
    await pilot.press("n")
    await pilot.pause()
    app.screen.query_one("#edit-input").value = text
    await pilot.press("enter")
    await pilot.pause()
    return app.screen.query_one("#items")


async def test_experience_screen_adds_a_lesson(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        table = await add_lesson(app, pilot, "Never   step onto H.")
        assert table.row_count == 3
        assert [str(c) for c in table.get_row_at(2)][2:] == ["you", "-", "human", "Never step onto H."]
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("enter")  # an empty lesson is not added
        await pilot.pause()
        assert table.row_count == 3


async def test_replay_screen_steps_through_a_saved_game(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#games").row_count == 2
        game = screen.episode
        assert game.episode_id == "g1" and screen.turn == 0
        assert screen.query_one("#board-before").board.to_dict() == game.turns[0].board
        await pilot.press("n")
        await pilot.press("n")
        assert screen.turn == 2
        turn = game.turns[2]
        text = plain(screen.query_one("#turn-text"))
        assert turn.response in text and f"[{turn.action}]" in text and turn.prompt[-1]["content"][:60] in text
        assert screen.query_one("#board-after").board.to_dict() == turn.board_after
        await pilot.press("p")
        assert screen.turn == 1
        screen.query_one("#filter-outcome").value = "lost"
        await pilot.pause()
        assert screen.query_one("#games").row_count == 1 and screen.episode.episode_id == "g2"
        screen.query_one("#filter-outcome").clear()
        await pilot.pause()
        assert screen.query_one("#games").row_count == 2


async def test_the_game_chosen_at_start_is_kept(tmp_path):
    """The Start screen's game list used to switch any app to its first choice as it mounted."""
    app = OelApp(engine=FakeEngine(tmp_path), settings=Settings(game=GameConfig(name="sokoban"), run="demo"))
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        assert app.settings.game.name == "sokoban"
        await pilot.press("2")
        assert app.screen.agent_game.name == "sokoban"


async def test_experience_items_show_their_square_brackets(tmp_path):
    """Lessons name moves as [down]; the table used to read them as markup and drop them."""
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 32)) as pilot:
        table = await add_lesson(app, pilot, "Answer [down] or [right].")
        shown = "".join(segment.text for segment in table.render_line(3))  # header, then 3 rows
        assert "Answer [down] or [right]." in shown


async def settle(app, pilot, times: int = 3):
    """Let background jobs (a move, then the probe it triggers) finish and the screen catch up."""
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_the_picker_changes_the_bars_and_the_agents_answers(tmp_path):
    from oel_engine.play.agents import AgentChoice

    app = make_app(tmp_path)
    app.engine.rounds_done = 2
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        screen = app.screen
        assert screen.agent_a.choice == AgentChoice("demo", 0)
        assert screen.agent_a.bars.shown[0]["student"].probs["up"] == 0.4
        await pilot.press("m")
        await pilot.pause()
        assert [c.key for c in app.screen.choices] == ["base", "round-0", "round-1", "teacher"]
        await pilot.press("down", "down", "enter")  # round 1
        await settle(app, pilot)
        assert screen.agent_a.choice == AgentChoice("demo", 2)
        assert "round 1 (consolidated)" in str(screen.agent_a.query_one(".side-title").render())
        assert screen.agent_a.bars.shown[0]["student"].probs["up"] == pytest.approx(0.2)  # the round's own reading
        await pilot.press("space")
        await settle(app, pilot)
        assert app.engine.moves_by[-1] == AgentChoice("demo", 2)
        assert "round 1 said: round: [down]" in screen.agent_a.log_view.text()
        assert screen.agent_game.board().player == (1, 0)


async def test_a_round_that_finishes_joins_the_picker(tmp_path):
    from oel_tui.follow import POLL_SECONDS

    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert [c.key for c in app.screen.choices] == ["base", "teacher"]
        app.engine.rounds_done = 1  # a round finished in another process
        await pilot.pause(POLL_SECONDS + 0.5)
        assert [c.key for c in app.screen.choices] == ["base", "round-0", "teacher"]
        assert "round 0" in str(app.screen.query_one("#play-title").render())
        assert any("round 0 (consolidated) is ready" in str(n.message) for n in app._notifications)


async def test_versus_steps_both_agents_on_the_same_map_with_their_own_tallies(tmp_path):
    from oel_engine.play.agents import AgentChoice

    app = make_app(tmp_path)
    app.engine.rounds_done = 1
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        screen = app.screen
        await pilot.press("v")
        await settle(app, pilot)
        assert screen.versus and screen.agent_b.display and not screen.human.display
        a, b = screen.agent_a, screen.agent_b
        assert (a.choice, b.choice) == (AgentChoice("demo", 0), AgentChoice("demo", 1))  # base against the newest
        assert a.game.board() == b.game.board()
        assert list(a.bars.shown[0]) == ["base"] and list(b.bars.shown[0]) == ["round 0"]
        await pilot.press("right")  # the person's keys do nothing in versus
        assert screen.human_game.turns == 0
        for _ in range(8):  # both play until both games end
            if a.game.done and b.game.done:
                break
            await pilot.press("space")
            await settle(app, pilot)
        assert a.game.done and b.game.done
        assert a.game.board().player == (0, 2) and b.game.board().player == (2, 0)  # right, right / down, down
        for panel in (a, b):  # seed 0: two legal moves, then two into the wall end the game
            assert (panel.tally.games, panel.tally.wins, panel.tally.turns, panel.tally.legal) == (1, 0, 4, 2)
            assert "0/1 won (0%), 2/4 legal (50%), 4.0 turns/game" in str(panel.query_one(".status").render())
        await pilot.press("n")  # both on the next map; the tallies stay
        await settle(app, pilot)
        assert a.game.seed == b.game.seed == 1 and a.game.turns == b.game.turns == 0
        assert a.tally.games == b.tally.games == 1
        await pilot.press("v")  # the person's board is back
        assert screen.human.display and not screen.agent_b.display



async def test_the_teaching_key_runs_a_round_then_plays_base_against_the_taught_model(tmp_path):
    from oel_engine.config import EVAL_SEED_BASE
    from oel_engine.play.agents import AgentChoice

    app = make_app(tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("3", "t")  # nothing to teach yet: says so, starts nothing
        await pilot.pause()
        assert not app.jobs.busy and app.engine.stage_calls == []
        assert any("write a lesson first" in str(n.message) for n in app._notifications)
        await add_lesson(app, pilot, "Go down or right.")
        await pilot.press("t")
        await pilot.pause()
        assert app.jobs.current == "teach" and app.engine.stage_calls == ["round"]
        assert "Teaching" in plain(app.screen.query_one("#teach-status"))
        app.engine.release.set()
        await settle(app, pilot, 4)
        screen = app.screen
        assert screen.__class__.__name__ == "PlayScreen" and screen.versus
        assert (screen.agent_a.choice, screen.agent_b.choice) == (AgentChoice("demo", 0), AgentChoice("demo", 1))
        assert screen.seed == EVAL_SEED_BASE and screen.agent_a.game.seed == screen.agent_b.game.seed == EVAL_SEED_BASE
        assert "held-out map" in str(screen.query_one("#score").render())


async def test_a_step_asked_for_while_the_bars_are_read_is_taken_after_them(tmp_path):
    """Defect: space pressed while the probe was reading the board was dropped without a word."""
    app = make_app(tmp_path)
    app.engine.probe_gate = gate = __import__("threading").Event()
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert app.jobs.current == "probe"
        await pilot.press("space")
        gate.set()
        await settle(app, pilot, 4)
        assert app.screen.agent_game.turns == 1

from oel_tui.app import OelApp
from oel_tui.widgets.board import BoardView


async def test_random_agent_plays_in_the_app():
    app = OelApp(game="frozenlake", seed=0)
    async with app.run_test() as pilot:
        board_view = app.query_one(BoardView)
        start = board_view.board
        assert start is not None and start.player == (0, 0)
        await pilot.press("space")
        assert app.game.turns == 1
        assert board_view.board != start or app.game.done
        for _ in range(8):
            await pilot.press("space")
        assert app.games >= 1  # at least one game ran to its end
        assert "random agent" in str(app.query_one("#score").render())

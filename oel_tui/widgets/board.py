"""A board drawn from the game's structured state (never by parsing the model's text)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from oel_engine.games.base import Board

# Each cell is three characters wide; letters keep it readable without colour.
CELLS = {
    "player": (" P ", "bold black on #f5d142"),
    "box": (" X ", "bold white on #9a6b3f"),
    "box_on_target": (" √ ", "bold white on #3f9a5a"),
    ".": (" · ", "#8aa0b5 on #dbe9f4"),
    "H": (" H ", "bold white on #1d3b5c"),
    "G": (" G ", "bold black on #7fd07f"),
    "#": ("███", "#555555"),
    "O": (" ◎ ", "#3f9a5a on #dbe9f4"),
}


def board_renderable(board: Board) -> Text:
    boxes = set(map(tuple, board.boxes))
    text = Text()
    for r, row in enumerate(board.terrain):
        for c, code in enumerate(row):
            if (r, c) == tuple(board.player):
                key = "player"
            elif (r, c) in boxes:
                key = "box_on_target" if code == "O" else "box"
            else:
                key = code
            glyph, style = CELLS.get(key, (f" {code} ", ""))
            text.append(glyph, style=style)
        if r < board.rows - 1:
            text.append("\n")
    return text


class BoardView(Widget):
    """Shows one Board; set `.board` to redraw."""

    DEFAULT_CSS = """
    BoardView { width: auto; height: auto; padding: 0 1; }
    """

    board: reactive[Board | None] = reactive(None, layout=True)

    def render(self):
        if self.board is None:
            return Text("(no game)")
        return board_renderable(self.board)

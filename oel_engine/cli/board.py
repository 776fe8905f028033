"""Plain-text drawing of a structured board (for the CLI; the TUI draws its own widget)."""

from __future__ import annotations

SYMBOLS = {".": "·", "H": "○", "G": "★", "#": "█", "O": "◎"}


def board_text(board) -> str:
    """`board` (a games.base.Board, as a turn request carries it) with one character pair per cell: P player, X box, terrain otherwise (readable without colour)."""
    boxes = set(map(tuple, board.boxes))
    lines = []
    for r, row in enumerate(board.terrain):
        cells = []
        for c, code in enumerate(row):
            if (r, c) == tuple(board.player):
                cells.append("P")
            elif (r, c) in boxes:
                cells.append("√" if code == "O" else "X")
            else:
                cells.append(SYMBOLS.get(code, code))
        lines.append(" ".join(cells))
    legend = "P you  ○ hole  ★ goal" if board.game == "frozenlake" else "P you  X box  ◎ target  √ box on target  █ wall"
    return "\n".join(lines) + f"\n({legend})"

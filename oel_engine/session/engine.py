"""The door itself: one object with every part of the engine a caller needs."""

from __future__ import annotations

from pathlib import Path

from ..play.policies import RandomPolicy
from .playing import Playing
from .reading import RunReading
from .standalone import StandaloneWork
from .writing import RunWriting


class Engine(RunReading, Playing, StandaloneWork, RunWriting):
    """The saves folder and the loaded model, with the parts above as its methods (each part
    one module of this package: reading.py, playing.py, standalone.py, writing.py)."""

    def __init__(self, saves: Path | str | None = None):
        from ..run.store import saves_root

        self.saves = saves_root(saves)  # given, else $OEL_SAVES, else ./saves
        self.lm = None
        self._random = RandomPolicy(0)
        self._adapters = None  # a run's round adapters on self.lm while Play uses one (RoundAdapters)

"""Progress events (typed) and the stop flag that long work checks between units of work."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Union

from .errors import Stopped


@dataclass
class StageStarted:
    stage: str  # play | eval | extract | consolidate | ...
    total: int  # units of work in this stage
    detail: str = ""


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    detail: str = ""


@dataclass
class EpisodeFinished:
    stage: str
    episode: object  # trajectory.Episode (kept untyped to avoid an import cycle)


@dataclass
class TurnPlayed:
    stage: str
    episode_index: int
    turn: object  # trajectory.Turn
    board: object  # games.Board


@dataclass
class StageFinished:
    stage: str
    seconds: float
    summary: dict = field(default_factory=dict)


@dataclass
class MetricsRecorded:
    """A metrics record just written (a consolidation step, an evaluation); drives live charts."""

    stage: str
    record: dict


Event = Union[StageStarted, Progress, EpisodeFinished, TurnPlayed, StageFinished, MetricsRecorded]
EventSink = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The default sink."""


class StopFlag:
    """Set from any thread (Ctrl-C handler, the TUI's cancel button); checked between units."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped("stopped by request")

"""Messages from worker threads to the UI (dataclasses, which Textual supports: its Message
__init__ runs their __post_init__); posted with post_message, which is thread-safe."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass
class EngineEvents(Message):
    """A batch of engine events, coalesced so the UI redraws at most a few times a second."""

    events: list = field(default_factory=list)


@dataclass
class WorkFinished(Message):
    """A background job ended: ok, stopped by request, or failed with a one-line reason."""

    job: str
    outcome: str  # ok | stopped | failed
    detail: str = ""

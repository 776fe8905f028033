"""Who plays on the Play screen: the base model, a finished round's consolidated model, or the
teacher (the newest model with the run's experience or lessons in its prompt).

A choice is plain data the app keeps and hands back; the engine turns it into weights by
switching a run's round adapters on one loaded base (`model/round_adapters.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentChoice:
    """One model the Play screen can put on a board."""

    run: str | None  # the run whose rounds it comes from (None: the loaded model as it is)
    rounds: int = 0  # consolidated rounds switched on: 0 is the base model
    teacher: bool = False  # reads the run's experience (or lessons) in its prompt

    @property
    def key(self) -> str:
        return "teacher" if self.teacher else "base" if self.rounds == 0 else f"round-{self.rounds - 1}"

    @property
    def label(self) -> str:
        if self.run is None:
            return "the model loaded on Start"
        if self.teacher:
            weights = "the base" if self.rounds == 0 else f"round {self.rounds - 1}'s model"
            return f"teacher ({weights} + the run's experience in its prompt)"
        return "base model" if self.rounds == 0 else f"round {self.rounds - 1} (consolidated)"

    @property
    def short(self) -> str:
        """A name that fits a board's title."""
        return "teacher" if self.teacher else "base" if self.rounds == 0 else f"round {self.rounds - 1}"


def choices_for(run: str | None, adapters: int, has_context: bool) -> list[AgentChoice]:
    """The base, one choice per finished round (oldest first), and the teacher when the run has
    experience or lessons to put in its prompt."""
    if run is None:
        return [AgentChoice(None)]
    out = [AgentChoice(run, r) for r in range(adapters + 1)]
    if has_context:
        out.append(AgentChoice(run, adapters, teacher=True))
    return out


def newest(choices: list[AgentChoice]) -> AgentChoice:
    """The newest consolidated model (the base while no round has finished)."""
    return max((c for c in choices if not c.teacher), key=lambda c: c.rounds)


__all__ = ["AgentChoice", "choices_for", "newest"]

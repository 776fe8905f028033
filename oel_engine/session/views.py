"""Plain data the app and the CLI read from the engine, and the helpers that build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import LoopConfig
from ..errors import OelError
from ..metrics import MetricsLog
from ..round.names import StageName
from ..run.artifacts import RunArtifacts
from ..run.experience_index import FILE_RUN

Status = Callable[[str], None]
STAGE_REQUESTS = ("round", StageName.EXTRACT, StageName.COLLECT, StageName.CONSOLIDATE, "evaluate")


@dataclass
class AgentMove:
    response: str
    response_tokens: int = 0


@dataclass
class ItemView:
    """One experience item with its provenance, as the Experience screen lists it."""

    round: int
    run: int
    step: int
    text: str
    episode_id: str
    source: str
    enabled: bool = True
    edited: bool = False
    new_this_round: bool = False


@dataclass
class EpisodeRow:
    """One saved game as the Replay screen lists it (read from the id index, no trajectories)."""

    episode_id: str
    round: int
    stage: str
    policy: str
    seed: int
    success: bool
    turns: int

    @property
    def outcome(self) -> str:
        return "won" if self.success else "lost"


@dataclass
class RunReport:
    """A run as read (no lock taken): its settings, rounds done and typed metrics."""

    name: str
    config: LoopConfig | None
    metrics: MetricsLog
    rounds_done: int = 0

    def summary(self) -> dict:
        """Per round: held-out results, the in-context curve, seconds per stage, peak memory."""
        from ..report.summaries import run_summary

        return run_summary(self.metrics)

    def eval_rows(self) -> list:
        """The held-out evaluations in round order (typed EvalSummary records)."""
        from ..report.summaries import eval_summaries

        return eval_summaries(self.metrics)

    def consolidation_steps(self, round_index: int) -> list:
        from ..report.summaries import consolidation_steps

        return consolidation_steps(self.metrics, round_index)


def quiet(_: str) -> None:
    pass


def one_line(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise OelError("an experience item cannot be empty")
    if len(text) > 1000:
        raise OelError(f"an experience item holds at most 1000 characters, not {len(text)}")
    return text


def list_items(art: RunArtifacts) -> list[ItemView]:
    """The newest snapshot's items of every extraction run, the items a person wrote, and the
    items of the run's experience file, with provenance."""
    latest: dict[tuple[int, int], dict] = {}
    for (r, k, n), rec in sorted(art.experience.snapshot_records().items()):
        latest[(r, k)] = rec
    last_round = max((r for r, _ in latest), default=art.rounds_done())
    items = []
    external = art.experience.external()
    if external is not None:
        from ..experience.items import parse_items

        text, meta = external
        for line in parse_items(text):
            items.append(ItemView(meta.get("from_round", 0), FILE_RUN, 0, line, meta["source"], "file"))
    for (r, k), rec in sorted(latest.items()):
        for i in rec.get("items", []):
            items.append(ItemView(i["round"], i["run"], i["step"], i["text"], i["episode_id"], i.get("source", "model"),
                                  i.get("enabled", True), i.get("edited", False), new_this_round=i["round"] == last_round))
    return items

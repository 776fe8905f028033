"""The names of a round's stages, owned here: every other place says StageName.X, never a bare string."""

from __future__ import annotations

from enum import StrEnum


class StageName(StrEnum):
    """The stages of a round, in its order: keys of the run's state table, labels of events, the
    `stage` of the games each plays (a person's games say "play")."""

    EVAL_BASE = "eval_base"
    EXTRACT = "extract"
    EVAL_IN_CONTEXT = "eval_in_context"
    COLLECT = "collect"
    CONSOLIDATE = "consolidate"
    EVAL_CONSOLIDATED = "eval_consolidated"

    @classmethod
    def evaluation(cls, kind: str) -> "StageName":
        return cls(f"eval_{kind}")

"""What a stage is: what it needs, how it knows its units of work, and how it runs them.

The driver (runner.py) does everything around that once: skipping a finished stage, preparing
the policy, events, timing, the stage's metrics record and marking it done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable

from .context import RoundContext
from .names import StageName


@dataclass
class Plan:
    total: int  # units of work in the whole stage
    pending: list[Hashable] = field(default_factory=list)  # units not finished yet, in order
    detail: str = ""


class Stage:
    name = ""  # the key in the run's state table, and the label of its events
    needs: tuple[StageName, ...] = ()  # stages of the same round that must be done first

    def applies(self, r: int) -> bool:
        return True

    def policy_round(self, r: int) -> int:
        """Whose weights this stage runs on: round r's starting policy unless said otherwise."""
        return r

    def plan(self, ctx: RoundContext, r: int) -> Plan:
        raise NotImplementedError

    def begin(self, ctx: RoundContext, r: int) -> None:
        """Set-up before the first pending unit (also on resume)."""

    def run(self, ctx: RoundContext, r: int, pending: list, unit_done: Callable[[str], None]) -> None:
        """Run the pending units, calling `unit_done(detail)` after each; the default runs them
        one at a time with a stop check between (a stage that batches units overrides this)."""
        for unit in pending:
            ctx.stop.check()
            unit_done(self.run_unit(ctx, r, unit) or "")

    def run_unit(self, ctx: RoundContext, r: int, unit) -> str | None:
        raise NotImplementedError

    def finish(self, ctx: RoundContext, r: int) -> dict:
        """After the last unit; returns details for the stage's metrics record."""
        return {}

    def close(self, ctx: RoundContext, r: int, completed: bool) -> None:
        """Always called last, also when the stage was stopped or failed."""

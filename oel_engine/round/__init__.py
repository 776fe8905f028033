"""The OEL round as stages under one driver (runner.py holds the order; stages call no stage)."""

from .runner import ROUND, RoundRunner, stage_names

__all__ = ["ROUND", "RoundRunner", "stage_names"]

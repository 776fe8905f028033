"""The OEL round as stages under one driver (runner.py holds the order; stages call no stage).

The driver is loaded on first use, so that reading a stage's name (`names.py`) loads no model code."""

__all__ = ["ROUND", "RoundRunner", "stage_names"]


def __getattr__(name: str):
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

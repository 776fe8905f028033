"""Which process of an `accelerate launch` this is (the launcher's environment; 0 of 1 alone).

The follower ranks' part of a round is `round/follower.py`."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))

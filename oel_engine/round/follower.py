"""`oel consolidate --backend trl` under `accelerate launch`: one process per GPU.

Rank 0 is the ordinary command: it holds the run's lock, builds the round's data, trains and
writes the adapter and the metrics. Every other rank follows: it reads the run without the lock,
waits for rank 0's data file, loads the same starting policy (the base with the earlier rounds'
adapters merged), builds the same seeded adapter and steps TRL's trainer in lockstep (TRL and
accelerate synchronise the gradients); it writes nothing. A stop request is not honoured part
way under several processes (the others would wait for it forever): Ctrl-C ends the launch, and
the next `oel consolidate` restarts the stage.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..consolidation.trl_backend import TrlDistiller
from ..errors import OelError
from ..model.loader import load_language_model
from ..overrides import apply_overrides
from ..run.artifacts import RunArtifacts
from ..run.loop_config import read_config
from ..run.store import RunStore
from .context import RoundContext
from .seeds import stream_seed


def follower_device(device: str) -> str:
    """Each process its own GPU (the launcher sets LOCAL_RANK); a CPU stays a CPU."""
    import torch

    local = os.environ.get("LOCAL_RANK")
    if local is None or device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return device
    return f"cuda:{local}"


def wait_for(path: Path, timeout: float, poll: float = 2.0, status: Callable[[str], None] = lambda _: None) -> None:
    waited = 0.0
    while not path.is_file():
        if waited >= timeout:
            raise OelError(f"waited {timeout:.0f} s for rank 0 to write {path}; is the main process running?")
        if waited == 0:
            status(f"Waiting for rank 0 to build the round's data ({path.name})...")
        time.sleep(poll)
        waited += poll


def follow_consolidation(root: Path, name: str, assignments: list[str], timeout: float = 6 * 3600,
                         status: Callable[[str], None] = lambda _: None, lm=None) -> int:
    """Train in lockstep with rank 0 without writing; returns the TRL steps taken. `assignments`
    are the command's `consolidation.*` settings (the same ones rank 0 applies); `lm` a loaded model
    (tests), else the run's model is loaded on this process's device."""
    with RunStore(root, name, readonly=True) as store:
        config = read_config(store)
        if config is None:
            raise OelError(f"run '{name}' was not made by `oel loop`: nothing to consolidate")
        config = apply_overrides(config, assignments).validate()
        if config.consolidation.backend != "trl":
            raise OelError("several processes need the TRL backend: add --backend trl")
        art = RunArtifacts(store)
        r = art.rounds_done()
        wait_for(art.data_file(r), timeout, status=status)
        if lm is None:
            lm = load_language_model(replace(config.model, device=follower_device(config.model.device)), status=status)
        ctx = RoundContext(store, config, lm, status=status)
        ctx.prepare_policy(r)
        rows = art.read_data(r)
        steps: list[dict] = []
        distiller = TrlDistiller(lm, config.consolidation, seed=stream_seed(config.seed, r, "lora-init"))
        distiller.train(rows, steps.append, lambda: False)
        distiller.detach()  # nothing of a follower's adapter is kept: rank 0 saves the shared one
        return len(steps)

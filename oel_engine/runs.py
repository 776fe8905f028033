"""Opening OEL runs: a run folder plus the LoopConfig it was started with."""

from __future__ import annotations

from pathlib import Path

from .config import LoopConfig, from_dict, to_dict
from .errors import OelError
from .storage import RunStore


def open_loop_run(root: Path, name: str, new_config: LoopConfig | None = None) -> tuple[RunStore, LoopConfig]:
    """Open run `name`; a new run is created with `new_config`. An existing run keeps the
    configuration it was started with (only `rounds` may grow)."""
    exists = (Path(root) / name).is_dir()
    if not exists and new_config is None:
        raise OelError(f"no run named '{name}' in {root}: start one with `oel loop --run {name}`")
    store = RunStore(root, name)
    try:
        meta = store.meta()
        if "config" in meta:
            try:
                config = from_dict(LoopConfig, meta["config"])
            except (TypeError, ValueError) as exc:
                raise OelError(f"run '{name}' has an unreadable configuration ({exc})") from None
            if new_config is not None:
                _check_compatible(name, config, new_config)
                if new_config.rounds > config.rounds:
                    config = LoopConfig(**{**config.__dict__, "rounds": new_config.rounds})
                    store.set_meta(config=to_dict(config))
        elif new_config is not None:
            if meta.get("game") not in (None, new_config.game.name) or store.episodes():
                raise OelError(f"run '{name}' holds games from `oel play`; use a new --run name for an OEL loop")
            config = new_config
            store.set_meta(config=to_dict(config), game=config.game.name, model=config.model.model, preset=config.preset)
        else:
            raise OelError(f"run '{name}' was not started by `oel loop`/`oel extract`; it has no OEL configuration")
        return store, config.validate()
    except BaseException:
        store.close()
        raise


def save_config(store: RunStore, config: LoopConfig) -> None:
    store.set_meta(config=to_dict(config.validate()))


def _check_compatible(name: str, old: LoopConfig, new: LoopConfig) -> None:
    differences = []
    if old.game != new.game:
        differences.append(f"game {old.game.label()}")
    if old.preset != new.preset and new.preset != "custom":
        differences.append(f"preset {old.preset}")
    if old.model.model != new.model.model:
        differences.append(f"model {old.model.model}")
    if differences:
        raise OelError(f"run '{name}' was started with {', '.join(differences)}; resume it with those or use a new --run name")

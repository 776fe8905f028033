"""An OEL run's configuration in its folder: opening a run with it, reading it, saving it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import LoopConfig, from_dict, to_dict
from ..errors import OelError
from .store import RunStore


def read_config(store: RunStore) -> LoopConfig | None:
    meta = store.meta()
    if "config" not in meta:
        return None
    stored = meta["config"]
    evaluation = stored.get("evaluation")
    if isinstance(evaluation, dict) and "probe_spellings" not in evaluation:
        # saved before the setting existed: its probe read the four words, and keeps reading them
        stored = {**stored, "evaluation": {**evaluation, "probe_spellings": "words"}}
    try:
        return from_dict(LoopConfig, stored).validate()
    except (TypeError, ValueError) as exc:
        raise OelError(f"run '{store.name}' has an unreadable configuration ({exc})") from None


def open_loop_run(root: Path, name: str, new_config: LoopConfig | None = None, *,
                  readonly: bool = False, holder: str = "") -> tuple[RunStore, LoopConfig]:
    """Open run `name`; a new run is created with `new_config`. An existing run keeps the
    configuration it was started with (only `rounds` may grow)."""
    exists = (Path(root) / name).is_dir()
    if not exists and (new_config is None or readonly):
        raise OelError(f"no run named '{name}' in {root}: start one with `oel loop --run {name}`")
    store = RunStore(root, name, readonly=readonly, holder=holder)
    try:
        config = read_config(store)
        if config is not None:
            if new_config is not None:
                _check_compatible(name, config, new_config)
                if new_config.rounds > config.rounds and not readonly:
                    config = replace(config, rounds=new_config.rounds)
                    store.set_meta(config=to_dict(config))
        elif new_config is not None and not readonly:
            if store.meta().get("game") not in (None, new_config.game.name) or store.episode_rows():
                raise OelError(f"run '{name}' holds games from `oel play`; use a new --run name for an OEL loop")
            config = new_config.validate()
            store.set_meta(config=to_dict(config), game=config.game.name, model=config.model.model, preset=config.preset)
        else:
            raise OelError(f"run '{name}' was not started by `oel loop`/`oel extract`; it has no OEL configuration")
        return store, config
    except BaseException:
        store.close()
        raise


def save_config(store: RunStore, config: LoopConfig) -> None:
    store.set_meta(config=to_dict(config.validate()))


def _check_compatible(name: str, old: LoopConfig, new: LoopConfig) -> None:
    differences = []
    if old.game != new.game:
        differences.append(f"game {old.game.label()}")
    from ..presets import canonical

    if canonical(old.preset) != canonical(new.preset) and new.preset != "custom":
        differences.append(f"preset {old.preset}")
    if old.model.model != new.model.model:
        differences.append(f"model {old.model.model}")
    if differences:
        raise OelError(f"run '{name}' was started with {', '.join(differences)}; resume it with those or use a new --run name")

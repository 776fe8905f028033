"""Entry point for `oel-tui` (heavy imports are deferred until the app needs them)."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(prog="oel-tui", description="Watch a language model learn from its own experience.")
    parser.add_argument("--saves", default=None, help="folder of runs (default: $OEL_SAVES or ./saves)")
    parser.add_argument("--run", default=None, help="open this run")
    parser.add_argument("--game", default="frozenlake", choices=["frozenlake", "sokoban"])
    parser.add_argument("--model", default="embedded", help="embedded, a Hugging Face id, or a local folder")
    parser.add_argument("--seed", type=int, default=0, help="first map seed on the Play screen")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # library output must not garble the screen
    from oel_engine.logs import route_warnings_to_log

    route_warnings_to_log()  # library warnings to the log file, not over the screen

    from oel_engine.config import GameConfig, ModelConfig
    from oel_engine.run.store import saves_root

    from .app import OelApp, Settings

    settings = Settings(game=GameConfig(name=args.game), model=ModelConfig(model=args.model), run=args.run, seed=args.seed,
                        autoload=True)
    OelApp(settings=settings, saves=saves_root(args.saves)).run()


if __name__ == "__main__":
    main()

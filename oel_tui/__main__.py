"""Entry point for `oel-tui` (heavy imports are deferred until the app needs them)."""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="oel-tui", description="Watch a language model learn from its own experience.")
    parser.add_argument("--saves", default=None, help="folder of runs (default: $OEL_SAVES or ./saves)")
    parser.add_argument("--run", default=None, help="open this run")
    parser.add_argument("--game", default="frozenlake", choices=["frozenlake", "sokoban"])
    parser.add_argument("--model", default="embedded", help="embedded, a Hugging Face id, or a local folder")
    parser.add_argument("--seed", type=int, default=0, help="first map seed on the Play screen")
    parser.add_argument("--serve", action="store_true",
                        help="serve the app in a browser (one app per tab) instead of this terminal")
    parser.add_argument("--host", default=None, help="with --serve: address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="with --serve: port (default 8000)")
    args = parser.parse_args()
    if (args.host is not None or args.port is not None) and not args.serve:
        parser.error("--host and --port go with --serve")
    if args.serve:
        serve_in_browser(args)
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # library output must not garble the screen
    from oel_engine.logs import route_warnings_to_log

    route_warnings_to_log()  # library warnings to the log file, not over the screen

    from oel_engine.config import GameConfig, ModelConfig
    from oel_engine.run.store import saves_root

    from .app import OelApp, Settings

    settings = Settings(game=GameConfig(name=args.game), model=ModelConfig(model=args.model), run=args.run, seed=args.seed,
                        autoload=True)
    OelApp(settings=settings, saves=saves_root(args.saves)).run()


def serve_in_browser(args) -> None:
    from oel_engine.run.store import saves_root

    from .serve import DEFAULT_HOST, DEFAULT_PORT, app_command, exposure_warning, serve

    host = args.host or DEFAULT_HOST
    port = DEFAULT_PORT if args.port is None else args.port  # `--port 0` is an error, not the default
    if not 0 < port < 65536:
        raise SystemExit(f"oel-tui: --port {port} is not a port (1-65535)")
    warning = exposure_warning(host, port)
    if warning:
        print(warning, file=sys.stderr)
    serve(app_command(saves_root(args.saves), args.run, args.game, args.model, args.seed), host, port)


if __name__ == "__main__":
    main()

"""Entry point for `oel-tui` (heavy imports are deferred until needed)."""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(prog="oel-tui", description="Watch a language model learn from its own experience.")
    parser.add_argument("--game", default="frozenlake", choices=["frozenlake", "sokoban"])
    parser.add_argument("--seed", type=int, default=0, help="first map seed")
    args = parser.parse_args()
    from .app import OelApp

    OelApp(game=args.game, seed=args.seed).run()


if __name__ == "__main__":
    main()

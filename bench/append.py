"""Cost of saving the 10,000th game of a run, and of opening a run that holds 10,000 games.

Run it from a checkout (old or new code): the same RunStore API is timed. Prints the CPU model.

    python bench/append.py [--games 10000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from oel_engine.config import GameConfig  # noqa: E402
from oel_engine.play.policies import RandomPolicy  # noqa: E402
from oel_engine.play.rollout import play_episodes  # noqa: E402
from oel_engine.run.store import RunStore  # noqa: E402


def cpu() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=10_000)
    parser.add_argument("--prefill", action="store_true",
                        help="write all but the last 20 games straight to the file (the old code's appends are "
                             "quadratic: 10,000 of them take more than 10 minutes); opening the run indexes them")
    args = parser.parse_args()
    template = play_episodes(GameConfig(), [0, 1, 2, 3], RandomPolicy(0))
    root = Path(tempfile.mkdtemp())
    last = []
    first = 0
    if args.prefill:
        import json

        (root / "bench").mkdir()
        first = args.games - 20
        with open(root / "bench" / "trajectories.jsonl", "w") as f:
            for i in range(first):
                e = copy.deepcopy(template[i % 4])
                e.episode_id = f"game-{i:06d}"
                f.write(json.dumps(e.to_dict()) + "\n")
    with RunStore(root, "bench") as store:
        for i in range(first, args.games):
            e = copy.deepcopy(template[i % 4])
            e.episode_id = f"game-{i:06d}"
            started = time.perf_counter()
            store.add_episodes([e])
            if i >= args.games - 20:
                last.append(time.perf_counter() - started)
    size = (root / "bench" / "trajectories.jsonl").stat().st_size
    started = time.perf_counter()
    RunStore(root, "bench").close()
    opened = time.perf_counter() - started
    print(f"cpu: {cpu()}")
    print(f"trajectories.jsonl: {size / 2**20:.1f} MiB for {args.games} games")
    print(f"append_ms_at_{args.games}={statistics.median(last) * 1000:.2f} (median of the last 20 appends)")
    print(f"open_ms_at_{args.games}={opened * 1000:.1f}")


if __name__ == "__main__":
    main()

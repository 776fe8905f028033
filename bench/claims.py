"""The paper's claims (a)-(f), measured: a matrix of ordinary `oel` runs, then docs/results.md.

Every cell is a run made with the CLI (the commands are printed and written into the results),
with several seeds (`oel loop --seed S`). Ablations are forks of the main run (`oel fork`): the
same base evaluation, experience and deploy games, another consolidation. Resumable: rerun the
same command and finished runs are skipped, a run cut short resumes. Long: start it in the
background with its log in a file.

    python bench/claims.py > bench/claims.log 2>&1 &          # demo scale, embedded model (~1 h on 2 AMX cores)
    python bench/claims.py --report-only                      # rewrite docs/results.md from the runs
    # two cores, two workers (each runs a main run before its forks):
    OMP_NUM_THREADS=1 python bench/claims.py --worker 1/2 > bench/claims-1.log 2>&1 &
    OMP_NUM_THREADS=1 python bench/claims.py --worker 2/2 > bench/claims-2.log 2>&1 &
    python bench/claims.py --model Qwen/Qwen3-1.7B --preset paper-frozenlake --saves gpu-claims   # a GPU user's recipe
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "examples" / "lessons"


@dataclass
class Cell:
    """One run of the matrix."""

    name: str
    game: str
    seed: int
    rounds: int
    role: str  # main | trajectories | offpolicy | lessons
    fork_of: str | None = None
    options: list[str] = field(default_factory=list)

    def commands(self, common: list[str]) -> list[list[str]]:
        oel = [sys.executable, "-m", "oel_engine.cli"]
        loop = oel + ["loop", "--run", self.name, "--rounds", str(self.rounds), *common]
        if self.fork_of is None:
            return [loop + ["--game", self.game, "--seed", str(self.seed), *self.options]]
        saves = common[common.index("--saves"):common.index("--saves") + 2]
        return [oel + ["fork", "--run", self.fork_of, "--as", self.name, *self.options, *saves], loop]


def matrix(seeds: list[int], games: list[str], ood: int) -> list[Cell]:
    """Seed by seed (a partial matrix already has every claim at one seed)."""
    cells = []
    for s in seeds:
        if "frozenlake" in games:
            main = f"fl-main-s{s}"
            cells += [
                Cell(main, "frozenlake", s, 2, "main", options=["--ood", str(ood)]),
                # no instruction probe: claim (d) compares pass rates and move probabilities only
                Cell(f"fl-trajectories-s{s}", "frozenlake", s, 1, "trajectories", main,
                     ["--teacher-context", "trajectories", "--ood", "0"]),
                Cell(f"fl-offpolicy-s{s}", "frozenlake", s, 1, "offpolicy", main, ["--loss", "offpolicy"]),
                Cell(f"fl-lessons-s{s}", "frozenlake", s, 1, "lessons",
                     options=["--experience", str(LESSONS / "frozenlake.txt"), "--ood", "0"]),
            ]
        if "sokoban" in games:
            cells.append(Cell(f"sk-main-s{s}", "sokoban", s, 1, "main", options=["--ood", "0"]))
    return cells


def share(cells: list[Cell], worker: int, workers: int) -> list[Cell]:
    """Worker `worker` (1-based) of `workers`: a run goes with its forks (they need its round), and
    the groups are dealt in matrix order to the least loaded worker (a round of a main run
    weighs about two of a fork's), so each worker's share is the same whoever computes it."""
    groups: list[list[Cell]] = []
    for cell in cells:
        source = next((g for g in groups if g[0].name == cell.fork_of), None)
        (source.append(cell) if source is not None else groups.append([cell]))
    weight = lambda c: c.rounds * (2 if c.fork_of is None and c.role == "main" else 1)
    loads, shares = [0] * workers, [[] for _ in range(workers)]
    for group in groups:
        least = loads.index(min(loads))
        loads[least] += sum(weight(c) for c in group)
        shares[least] += group
    return shares[worker - 1]


def worker_of(text: str) -> tuple[int, int]:
    """"K/N" with 1 <= K <= N, for --worker."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 1/2, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"worker {k} of {n}: K must be between 1 and N")
    return k, n


def finished(saves: Path, cell: Cell) -> bool:
    from oel_engine.run.listing import summarize_run

    path = saves / cell.name
    return path.is_dir() and summarize_run(path).rounds >= cell.rounds


def run_cell(cell: Cell, common: list[str], saves: Path, log) -> bool:
    commands = cell.commands(common)
    if cell.fork_of is not None and (saves / cell.name).is_dir():
        commands = commands[1:]  # forked before: resume its loop
    for command in commands:
        log(f"$ {' '.join(command[2:])}")
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT)
        log(f"  exit {done.returncode} after {time.perf_counter() - started:.0f} s")
        if done.returncode != 0:
            return False
    return True


def random_baseline(game: str, saves: Path, episodes: int, samples: int) -> dict:
    """The random legal-move player on the same held-out maps, measured like the model."""
    cache = saves / f"random-{game}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    command = [sys.executable, "-m", "oel_engine.cli", "eval", "--policy", "random", "--game", game,
               "--episodes", str(episodes), "--samples", str(samples), "--json"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["command"] = " ".join(["oel", *command[3:]])
    cache.write_text(json.dumps(row))
    return row


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--games", default="frozenlake,sokoban")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--saves", default=str(ROOT / "bench" / "saves-claims"))
    ap.add_argument("--ood", type=int, default=1, help="instruction-probe seeds per model in the main runs")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--cells", default="", help="only these runs, in this order (comma-separated names): "
                    "to split the matrix between workers, e.g. two with OMP_NUM_THREADS=1 each")
    ap.add_argument("--worker", type=worker_of, default=None, metavar="K/N",
                    help="this worker's share of the matrix, e.g. 1/2 and 2/2 in two processes, "
                    "each with OMP_NUM_THREADS=1 on a 2-core machine")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    saves = Path(args.saves)
    saves.mkdir(parents=True, exist_ok=True)
    common = ["--preset", args.preset, "--model", args.model, "--saves", str(saves), "--json"]
    cells = matrix(list(range(args.seeds)), args.games.split(","), args.ood)
    timings = saves / "timings.jsonl"

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}")

    if not args.report_only:
        from oel_engine.model.precision import cpu_description

        log(f"cpu: {cpu_description()}; {len(cells)} runs in {saves}")
        for game in args.games.split(","):
            random_baseline(game, saves, 32, 8)
        by_name = {c.name: c for c in cells}
        todo = [by_name[n] for n in args.cells.split(",")] if args.cells else cells
        if args.worker:
            k, n = args.worker
            todo = share(todo, k, n)
            log(f"worker {k}/{n}: {', '.join(c.name for c in todo)}")
        for cell in todo:
            if finished(saves, cell):
                continue
            if cell.fork_of is not None and not finished(saves, by_name[cell.fork_of]):
                log(f"{cell.name} waits for {cell.fork_of} to finish (a fork copies its source's round)")
                continue
            started = time.perf_counter()
            ok = run_cell(cell, common, saves, log)
            with open(timings, "a") as f:
                f.write(json.dumps({"run": cell.name, "ok": ok, "seconds": round(time.perf_counter() - started)}) + "\n")
            if not ok:
                log(f"{cell.name} failed: see the output above; rerun to resume")
    from claims_report import write_results  # bench/claims_report.py

    write_results(saves, cells, Path(args.out), model=args.model, preset=args.preset, log=log)


if __name__ == "__main__":
    main()

"""docs/results.md from the claims matrix: each claim of the paper as paired per-seed differences
with their spread, a verdict, the random player's baseline and the commands that reproduce it.

Verdict rule (stated in the results too): with n seeds, the difference d (positive = what the
paper claims) has mean m and standard error se = sd / sqrt(n). "holds" if m - 2 se > 0, "does not
hold" if m + 2 se < 0, otherwise "cannot tell at this size"; also "cannot tell" when both sides
are 0 for every seed (a floor: the model never wins, so the metric cannot move).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from oel_engine.fileio import atomic_write_text
from oel_engine.metrics import EvalKind, OodSample, mean_sd
from oel_engine.report.plots import grouped_bars, lines
from oel_engine.report.data import RunData

ROOT = Path(__file__).resolve().parent.parent  # commands are shown relative to the checkout
HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell at this size"
GAMES = {"frozenlake": "Frozen Lake", "sokoban": "Sokoban"}
METRIC_NAMES = {"pass_rate": "pass rate", "good_move_prob": "good-move probability",
                "mean_response_tokens": "response tokens", "ood": "instruction probe accuracy"}


def verdict(diffs: list[float], floor: bool = False, min_se: float = 0.0) -> str:
    """The rule in the module docstring; `floor` when both compared values are 0 for every seed;
    `min_se` an error the seeds cannot show (the probe reads the same maps whatever the seed)."""
    if len(diffs) < 2:
        return f"{UNSURE} (one seed)" if diffs else "not measured yet"
    if floor:
        return f"{UNSURE} (0 on both sides)"
    m, sd = mean_sd(diffs)
    se = max(sd / math.sqrt(len(diffs)), min_se)
    if m - 2 * se > 0:
        return HOLDS
    if m + 2 * se < 0:
        return FAILS
    return UNSURE


@dataclass
class Comparison:
    """`a` against `b` per seed (None where a run is missing); positive a - b supports the claim."""

    claim: str
    game: str
    metric: str
    a_name: str
    b_name: str
    a: dict[int, float | None] = field(default_factory=dict)
    b: dict[int, float | None] = field(default_factory=dict)
    percent: bool = True
    a_se: dict[int, float | None] = field(default_factory=dict)  # the error over the maps or prompts, per seed
    b_se: dict[int, float | None] = field(default_factory=dict)

    def map_se(self) -> float:
        """The difference's error over the held-out maps (independent sides: an upper bound for a
        paired difference on the same maps); seeds share the maps, so it does not shrink with them."""
        pairs = [math.hypot(self.a_se[s], self.b_se[s]) for s in self.a_se
                 if self.a_se.get(s) is not None and self.b_se.get(s) is not None]
        return statistics.fmean(pairs) if pairs else 0.0

    def se(self) -> float:
        d = self.diffs()
        return max(mean_sd(d)[1] / math.sqrt(len(d)), self.map_se()) if d else 0.0

    def diffs(self) -> list[float]:
        return [self.a[s] - self.b[s] for s in sorted(self.a) if self.a[s] is not None and self.b.get(s) is not None]

    def at_floor(self) -> bool:
        pairs = [(self.a[s], self.b.get(s)) for s in self.a if self.a[s] is not None and self.b.get(s) is not None]
        return bool(pairs) and all(x == 0 and y == 0 for x, y in pairs)

    def verdict(self) -> str:
        return verdict(self.diffs(), self.at_floor(), self.map_se())

    def fmt(self, v: float | None, signed: bool = False) -> str:
        if v is None:
            return "-"
        sign = "+" if signed and v > 0 else ""
        return f"{sign}{v:.1%}" if self.percent else f"{sign}{v:.1f}"

    def summary(self) -> str:
        d = self.diffs()
        if not d:
            return "-"
        return f"{self.fmt(mean_sd(d)[0], signed=True)} ± {self.fmt(self.se())}"


class Matrix:
    """The matrix's runs, loaded once (runs not made yet are simply absent)."""

    def __init__(self, saves: Path, cells):
        self.saves, self.cells = Path(saves), list(cells)
        self.runs: dict[str, RunData] = {}
        for cell in self.cells:
            if (self.saves / cell.name).is_dir():
                try:
                    self.runs[cell.name] = RunData.load(self.saves / cell.name)
                except Exception as error:  # a run that never got its settings written: not in the results
                    print(f"skipping {cell.name}: {error}")
        self.seeds = sorted({c.seed for c in self.cells})

    def random(self, game: str) -> dict | None:
        path = self.saves / f"random-{game}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def cell(self, game: str, role: str, seed: int):
        return next((c for c in self.cells if c.game == game and c.role == role and c.seed == seed), None)

    def per_seed(self, game: str, role: str, read: Callable[[RunData], float | None]) -> dict[int, float | None]:
        out = {}
        for s in self.seeds:
            cell = self.cell(game, role, s)
            run = self.runs.get(cell.name) if cell else None
            out[s] = read(run) if run is not None else None
        return out

    def games(self, role: str) -> list[str]:
        return [g for g in GAMES if any(c.game == g and c.role == role for c in self.cells)]


def evaluated(r: int, kind: str, key: str) -> Callable[[RunData], float | None]:
    def read(run: RunData) -> float | None:
        summary = run.evaluation(r, kind)
        return None if summary is None else getattr(summary, key, None)
    read.se_reader = (evaluated(r, kind, "good_move_prob_se") if key == "good_move_prob" else
                      games_se(r, kind) if key == "pass_rate" else None)
    return read


def binomial_se(rate: float, n: int) -> float | None:
    return math.sqrt(rate * (1 - rate) / n) if n > 0 else None


def games_se(r: int, kind: str) -> Callable[[RunData], float | None]:
    """A pass rate's error over the games it counts (held-out maps x sampling seeds)."""
    def read(run: RunData) -> float | None:
        summary = run.evaluation(r, kind)
        return None if summary is None else binomial_se(summary.pass_rate, summary.episodes * summary.samples)
    return read


def probed(r: int, kind: str) -> Callable[[RunData], float | None]:
    def read(run: RunData) -> float | None:
        found = run.ood(r, kind)
        return found[0] if found else None

    def error(run: RunData) -> float | None:
        """Over the probe's prompts: every seed reads the same prompts, often with the same sampling seed."""
        samples = {o.sample: o for o in run.log.of(OodSample, round=r, kind=kind)}.values()
        found = run.ood(r, kind)
        return binomial_se(found[0], sum(o.prompts for o in samples)) if found else None
    read.se_reader = error
    return read


def at_last_round(reader_at: Callable[[int], Callable[[RunData], float | None]]) -> Callable[[RunData], float | None]:
    """`reader_at(r)` at the run's last round, with that reader's error over maps, games or prompts."""
    def reader(run: RunData):
        rounds = run.rounds()
        return reader_at(rounds[-1]) if rounds else None

    def read(run: RunData) -> float | None:
        found = reader(run)
        return found(run) if found else None

    def error(run: RunData) -> float | None:
        se_reader = getattr(reader(run), "se_reader", None)
        return se_reader(run) if se_reader else None
    read.se_reader = error
    return read


def last_round(key: str, kind: str = EvalKind.CONSOLIDATED) -> Callable[[RunData], float | None]:
    return at_last_round(lambda r: evaluated(r, kind, key))


def curve_end(run: RunData) -> float | None:
    points = run.curve(0)
    return points[-1]["pass_rate"] if len(points) > 1 else None


def curve_start(run: RunData) -> float | None:
    points = run.curve(0)
    return points[0]["pass_rate"] if len(points) > 1 else None


def comparisons(m: Matrix) -> list[Comparison]:
    out: list[Comparison] = []

    def add(claim, game, metric, a_name, a_role, a_read, b_name, b_role, b_read, percent=True):
        errors = [m.per_seed(game, role, read.se_reader) if getattr(read, "se_reader", None) else {}
                  for role, read in ((a_role, a_read), (b_role, b_read))]
        out.append(Comparison(claim, game, metric, a_name, b_name, m.per_seed(game, a_role, a_read),
                              m.per_seed(game, b_role, b_read), percent, *errors))

    base, inctx, cons = EvalKind.BASE, EvalKind.IN_CONTEXT, EvalKind.CONSOLIDATED
    for game in m.games("main"):
        for key in ("pass_rate", "good_move_prob"):
            add("a", game, key, "in context (round 1)", "main", evaluated(0, inctx, key),
                "base", "main", evaluated(0, base, key))
        add("a", game, "pass_rate", "curve: last extraction step", "main", curve_end,
            "curve: first measured step", "main", curve_start)
        for key in ("pass_rate", "good_move_prob"):
            add("b", game, key, "consolidated, no experience in the prompt", "main", evaluated(0, cons, key),
                "in context", "main", evaluated(0, inctx, key))
    for game in m.games("lessons"):
        for key in ("pass_rate", "good_move_prob"):
            add("b", game, key, "consolidated on the shipped lessons", "lessons", evaluated(0, cons, key),
                "shipped lessons in context", "lessons", evaluated(0, inctx, key))
        # did the lessons move the model at all, in the prompt and once baked in?
        add("b", game, "good_move_prob", "shipped lessons in context", "lessons", evaluated(0, inctx, "good_move_prob"),
            "base", "lessons", evaluated(0, base, "good_move_prob"))
        add("b", game, "good_move_prob", "consolidated on the shipped lessons", "lessons",
            evaluated(0, cons, "good_move_prob"), "base", "lessons", evaluated(0, base, "good_move_prob"))
    for game in m.games("main"):
        rounds = max(c.rounds for c in m.cells if c.game == game and c.role == "main")
        if rounds < 2:
            continue
        for key in ("pass_rate", "good_move_prob"):
            add("c", game, key, "consolidated, round 1", "main", evaluated(0, cons, key), "base", "main", evaluated(0, base, key))
            add("c", game, key, "consolidated, round 2", "main", evaluated(1, cons, key),
                "consolidated, round 1", "main", evaluated(0, cons, key))
    for game in m.games("trajectories"):
        for key in ("pass_rate", "good_move_prob"):
            for kind, name in ((inctx, "in context"), (cons, "consolidated")):
                add("d", game, key, f"{name}, extracted experience", "main", evaluated(0, kind, key),
                    f"{name}, raw trajectories", "trajectories", evaluated(0, kind, key))
    for game in m.games("offpolicy"):
        add("e", game, "ood", "on-policy consolidated (round 1)", "main", probed(0, cons), "base", "main", probed(0, base))
        add("e", game, "ood", "on-policy consolidated (round 1)", "main", probed(0, cons),
            "off-policy consolidated (round 1)", "offpolicy", probed(0, cons))
        add("e", game, "ood", "on-policy consolidated (last round)", "main", probed_last, "base", "main", probed(0, base))
    for game in m.games("main"):
        # positive = shorter: base length minus the last consolidated model's
        add("f", game, "mean_response_tokens", "base", "main", evaluated(0, base, "mean_response_tokens"),
            "consolidated, last round", "main", last_round("mean_response_tokens"), percent=False)
    return out


probed_last = at_last_round(lambda r: probed(r, EvalKind.CONSOLIDATED))


CLAIMS = {
    "a": "The in-context pass rate rises as experience accumulates.",
    "b": "The consolidated model matches or beats the in-context one without the experience in its prompt.",
    "c": "Rounds compound (round 2 > round 1 > base).",
    "d": "Extracted experience beats raw trajectories as the teacher's context.",
    "e": "On-policy consolidation keeps out-of-distribution skill; off-policy loses more.",
    "f": "Responses get shorter (about 70% of the starting length after 3 rounds).",
}


def claim_verdict(cs: list[Comparison]) -> str:
    """A claim's headline: the pass-rate rows decide where they can; otherwise the sensitive metrics."""
    verdicts = [c.verdict() for c in cs]
    if not verdicts:
        return "not measured"
    decided = [v for v in verdicts if v in (HOLDS, FAILS)]
    if decided and all(v == HOLDS for v in decided):
        return HOLDS if len(decided) == len(verdicts) else f"{HOLDS} on {len(decided)} of {len(verdicts)} comparisons"
    if decided and all(v == FAILS for v in decided):
        return FAILS if len(decided) == len(verdicts) else f"{FAILS} on {len(decided)} of {len(verdicts)} comparisons"
    if decided:
        return f"mixed ({decided.count(HOLDS)} hold, {decided.count(FAILS)} do not, of {len(verdicts)})"
    return UNSURE


def comparison_table(c: Comparison, m: Matrix) -> list[str]:
    seeds = m.seeds
    head = "| | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |"
    rows = [head, "|---|" + "---|" * (len(seeds) + 1)]
    rnd = m.random(c.game)
    if rnd is not None and c.metric in ("pass_rate", "good_move_prob"):
        spread = rnd.get(f"{c.metric}_std") or rnd.get(f"{c.metric}_se") or 0.0
        rows.append("| random legal-move player | " + " | ".join("" for _ in seeds)
                    + f" | {c.fmt(rnd[c.metric])} ± {c.fmt(spread)} |")
    for name, values in ((c.a_name, c.a), (c.b_name, c.b)):
        present = [v for v in values.values() if v is not None]
        mean, sd = mean_sd(present) if present else (None, None)
        rows.append(f"| {name} | " + " | ".join(c.fmt(values.get(s)) for s in seeds)
                    + f" | {c.fmt(mean)} ± {c.fmt(sd)} |" if present else
                    f"| {name} | " + " | ".join("-" for _ in seeds) + " | - |")
    diffs = {s: (c.a[s] - c.b[s]) if c.a.get(s) is not None and c.b.get(s) is not None else None for s in seeds}
    rows.append("| **difference** | " + " | ".join(c.fmt(diffs[s], signed=True) for s in seeds)
                + f" | **{c.summary()}** (± se) |")
    return rows


def _bars(path: Path, c_list: list[Comparison], title: str, m: Matrix, key: str) -> Path | None:
    """One chart per claim and game: the compared policies' means ± sd over seeds."""
    groups, series = [], {"mean over seeds": []}
    for c in c_list:
        for name, values in ((c.b_name, c.b), (c.a_name, c.a)):
            present = [v for v in values.values() if v is not None]
            if name in groups or not present:
                continue
            groups.append(name)
            series["mean over seeds"].append(mean_sd(present))
    if not groups:
        return None
    rnd = m.random(c_list[0].game)
    baseline = ("random legal-move player", rnd[key]) if rnd is not None and key in ("pass_rate", "good_move_prob") else None
    wrapped = [_wrap(g) for g in groups]
    return grouped_bars(path, title, wrapped, series, METRIC_NAMES[key], baseline=baseline, percent=c_list[0].percent)


def _wrap(text: str, width: int = 18) -> str:
    words, lines_, line = text.split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines_.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines_ + [line])


def _curves(path: Path, m: Matrix, game: str) -> Path | None:
    series = {}
    for s in m.seeds:
        cell = m.cell(game, "main", s)
        run = m.runs.get(cell.name) if cell else None
        if run is not None and run.curve(0):
            series[f"seed {s}"] = [(p["step"], p["pass_rate"]) for p in run.curve(0)]
    if not series:
        return None
    return lines(path, f"{GAMES[game]}: in-context pass rate as experience accumulates (round 1)", series,
                 "extraction step", "held-out pass rate", percent=True)


def _rounds(path: Path, m: Matrix, game: str, key: str) -> Path | None:
    series = {}
    for s in m.seeds:
        cell = m.cell(game, "main", s)
        run = m.runs.get(cell.name) if cell else None
        if run is None:
            continue
        points = [(0, evaluated(0, EvalKind.BASE, key)(run))]
        points += [(r + 1, evaluated(r, EvalKind.CONSOLIDATED, key)(run)) for r in run.rounds()]
        series[f"seed {s}"] = [(x, y) for x, y in points if y is not None]
    if not series:
        return None
    return lines(path, f"{GAMES[game]}: {METRIC_NAMES[key]} by round (0 = base)", series,
                 "rounds of OEL", METRIC_NAMES[key], percent=True)


def write_results(saves: Path, cells, out: Path, model: str, preset: str, log=print) -> Path:
    m = Matrix(saves, cells)
    out = Path(out)
    figures = out.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    cs = comparisons(m)
    made = [c.name for c in m.cells if c.name in m.runs and m.runs[c.name].rounds()]
    md = ["# The paper's claims, measured", "",
          f"Model `{model}`, preset `{preset}`, {len(m.seeds)} seeds, "
          f"{len(made)} of {len(m.cells)} runs of the matrix made. Written by `python bench/claims.py"
          f"{'' if model == 'embedded' else f' --model {model}'}{'' if preset == 'demo' else f' --preset {preset}'}`"
          " (resumable; `--report-only` rewrites this page from the runs).", ""]
    md += _hardware(m)
    md += ["## How to read it", "",
           "Each comparison pairs two policies seed by seed (a run per seed: same seed, same held-out maps) and "
           "takes the difference, positive where the paper's claim says it should be. The difference's mean ± "
           "standard error over seeds decides: **holds** if mean − 2 se > 0, **does not hold** if mean + 2 se < 0, "
           f"otherwise **{UNSURE}**. Every seed reads the same held-out maps (and the instruction probe the "
           "same prompts), so the spread over a few seeds can understate the error: the standard error over "
           "the maps or prompts (binomial for a pass rate or a probe accuracy; both sides' errors combined, "
           f"as if independent) is used when larger. **{UNSURE}** is also the verdict when both sides are 0% on every seed "
           "(a pass rate at the floor cannot move). Pass rates are over the held-out maps × sampling seeds "
           "of each evaluation; the good-move probability is the model's probability of a move on a shortest "
           "path at the start of each held-out map (read after \"[\"), a far more sensitive reading than "
           "the pass rate for a model that rarely wins. The random legal-move player is measured the same way "
           "on the same maps (its good-move probability is the share of good moves among legal ones).", ""]
    md += ["## Verdicts", "", "| claim | game | comparison | difference (mean ± se) | verdict |", "|---|---|---|---|---|"]
    for c in cs:
        md.append(f"| ({c.claim}) | {GAMES[c.game]} | {METRIC_NAMES[c.metric]}: {c.a_name} − {c.b_name} | "
                  f"{c.summary()} | {c.verdict()} |")
    md.append("")
    for claim, text in CLAIMS.items():
        mine = [c for c in cs if c.claim == claim]
        md += [f"## ({claim}) {text}", "", f"Verdict: **{claim_verdict(mine)}**.", ""]
        if not mine:
            md += ["Not part of this matrix (see its cells below).", ""]
            continue
        for game in GAMES:
            of_game = [c for c in mine if c.game == game]
            if not of_game:
                continue
            for c in of_game:
                md += [f"{GAMES[game]}, {METRIC_NAMES[c.metric]}: {c.a_name} against {c.b_name} — "
                       f"{c.verdict()}.", "", *comparison_table(c, m), ""]
            for key in sorted({c.metric for c in of_game}):
                chart = _bars(figures / f"claim-{claim}-{game}-{key}.png", [c for c in of_game if c.metric == key],
                              f"({claim}) {GAMES[game]}: {METRIC_NAMES[key]}", m, key)
                if chart is not None:
                    md += [f"![({claim}) {GAMES[game]} {METRIC_NAMES[key]}](results/{chart.name})", ""]
            extra = (_curves(figures / f"claim-a-{game}-curve.png", m, game) if claim == "a" else
                     _rounds(figures / f"claim-c-{game}-rounds.png", m, game, "good_move_prob") if claim == "c" else None)
            if extra is not None:
                md += [f"![({claim}) {GAMES[game]}](results/{extra.name})", ""]
    md += _cells(m, model, preset)
    md += kept_sections(out)
    atomic_write_text(out, "\n".join(md) + "\n")
    log(f"wrote {out} ({len(cs)} comparisons, {len(made)} runs)")
    return out


def kept_sections(page: Path) -> list[str]:
    """Sections other scripts write into the page between their own markers (bench/compounding.py):
    kept as they are when the claims are rewritten."""
    import re

    text = page.read_text() if page.is_file() else ""
    blocks = re.findall(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", text, flags=re.S)
    return ["", *[re.search(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", text, flags=re.S).group(0)
                  for name in blocks]] if blocks else []


def _hardware(m: Matrix) -> list[str]:
    """The CPU, and each made run's time: the sum of its stages (a resumed run counts its work once)."""
    from oel_engine.metrics import StageTime
    from oel_engine.model.precision import cpu_description

    def own(name: str, run: RunData) -> float:
        """A fork's log holds the stages it copied from its source: those are the source's work."""
        times = Counter((t.round, t.stage, t.seconds) for t in run.log.of(StageTime))
        source = next((c.fork_of for c in m.cells if c.name == name), None)
        if source in m.runs:
            times -= Counter((t.round, t.stage, t.seconds) for t in m.runs[source].log.of(StageTime))
        return sum(key[2] * n for key, n in times.items())

    seconds = {name: own(name, run) for name, run in m.runs.items()}
    text = f"Measured on: {cpu_description()}." + _precisions(m)
    if seconds:
        longest = max(seconds, key=seconds.get)
        text += (f" The {len(seconds)} runs made took {sum(seconds.values()) / 3600:.1f} h of work in all "
                 f"(stage times; longest {longest}, {seconds[longest] / 60:.0f} min).")
    return [text, ""]


def _precisions(m: Matrix) -> str:
    """Which dtype sampling (and the probes) and training used, over every made run: a run's
    readings depend on it, so a mixed matrix says so."""
    from oel_engine.metrics import PrecisionChoice

    seen: dict[str, dict[str, set[str]]] = {}
    for name, run in m.runs.items():
        for p in run.log.of(PrecisionChoice):
            seen.setdefault(p.use, {}).setdefault(p.choice, set()).add(name)
    parts = []
    for use in sorted(seen):
        choices = seen[use]
        if len(choices) == 1:
            parts.append(f"{use} in {next(iter(choices))} in every run")
        else:
            parts.append(f"{use} mixed: " + "; ".join(f"{c} in {', '.join(sorted(runs))}" for c, runs in sorted(choices.items())))
    return f" Precision: {', '.join(parts)}." if parts else ""


def _cells(m: Matrix, model: str, preset: str) -> list[str]:
    common = ["--preset", preset, "--model", model, "--saves", "SAVES", "--json"]
    md = ["## The runs", "", "Every cell is an ordinary `oel` run; forks share their source's base evaluation, "
          "experience and games (`oel fork`). `oel report --run NAME --saves SAVES` shows any of them whole.", "",
          "| run | claim role | rounds | made | commands |", "|---|---|---|---|---|"]
    for cell in m.cells:
        commands = "<br>".join("`oel " + " ".join(c[3:]).replace(str(m.saves), "SAVES").replace(str(ROOT) + "/", "") + "`"
                               for c in cell.commands(common))
        done = cell.name in m.runs and len(m.runs[cell.name].rounds()) >= cell.rounds
        md.append(f"| `{cell.name}` | {cell.role} | {cell.rounds} | {'yes' if done else 'not yet'} | {commands} |")
    for game in GAMES:
        rnd = m.random(game)
        if rnd is not None:
            md.append(f"| random-{game} | baseline | - | yes | `{rnd.get('command', '')}` |")
    return md + [""]

"""Extraction: K runs x N accumulation steps, each step one unit (all K runs as one batch).

At step n every run plays the SAME map (they differ only in sampling seed) with the current
policy and no experience, then the same model, as extractor, reads its game and writes items.
Games a person played in this round come first, as step 0. Every `curve_every` steps the
held-out pass rate with each run's experience in the prompt is measured (the in-context curve);
the point at the consolidation step is the in-context evaluation's (`curve_from_evaluation`).
A run given an experience file (--experience) skips a round's extraction that has not started:
the file is the teacher's context instead.
"""

from __future__ import annotations

import torch

from ..config import SamplingConfig
from ..evaluation.held_out import episode_metrics
from ..experience.extraction import (
    ExperienceItem,
    ExperienceState,
    extraction_prompt,
    parse_extraction,
    truncate_items,
)
from ..metrics import CurvePoint, ExtractStep
from ..play.rollout import games_over_maps, play_episodes
from ..play.trajectory import Episode
from .context import RoundContext
from .names import StageName
from .seeds import extract_seed, stream_seed
from .stage import Plan, Stage

HUMAN_STEP = 0


def curve_from_evaluation(ctx: RoundContext, r: int, n: int) -> bool:
    """Whether the in-context evaluation plays step n's experiences anyway, on the curve's maps
    among its own: then it records that curve point (evaluate.py) and extraction does not play
    the same games twice (a demo round: that point's 16 games)."""
    x = ctx.cfg.extraction
    return (bool(x.curve_every) and n % x.curve_every == 0 and n == x.consolidation_step
            and ctx.cfg.consolidation.teacher_context == "experience" and ctx.art.experience.external(r) is None
            and x.curve_episodes <= ctx.cfg.evaluation.episodes)


def play_curve_point(ctx: RoundContext, r: int, n: int, states: list[ExperienceState]) -> None:
    """Held-out pass rate with each run's experience after step n (the in-context curve); all
    runs' games in one batch, each game with its run's experience and random stream."""
    x, ev = ctx.cfg.extraction, ctx.cfg.evaluation
    done = {p.run for p in ctx.metrics().of(CurvePoint, round=r, step=n)}
    todo = [s for s in states if s.run not in done]
    if not todo:
        return
    maps = ev.seeds(x.curve_episodes)
    seeds, experiences, streams = games_over_maps(
        maps, [(stream_seed(ctx.cfg.seed, r, "curve", n * 100 + s.run), s.text(x.format)) for s in todo])
    episodes = play_episodes(ctx.cfg.game, seeds, ctx.model_policy(ev.sampling, seed=streams[0]),
                             experiences=experiences, round_index=r, stage="curve",
                             concurrent=ctx.lm.config.batch_size, stop=ctx.stop, sampling_seeds=streams)
    for i, state in enumerate(todo):
        games = episodes[i * len(maps):(i + 1) * len(maps)]
        ctx.store.add_metrics(CurvePoint(round=r, step=n, run=state.run, **episode_metrics(games)))


class Extract(Stage):
    name = StageName.EXTRACT

    def plan(self, ctx: RoundContext, r: int) -> Plan:
        x = ctx.cfg.extraction
        # the extraction runs' own snapshots (a person's items are a separate, negative run)
        self.records = records = {key: v for key, v in ctx.art.experience.snapshot_records(r).items() if key[1] >= 0}
        self.states, self.humans = [], []
        external = ctx.art.experience.external(r)
        lessons = ctx.cfg.consolidation.teacher_context == "lessons"
        self.skipped = lessons or (external is not None and not records)
        self.external_source = external[1]["source"] if external is not None else None
        if lessons:
            return Plan(0, [], "skipped: the teacher reads the run's lessons")
        if self.skipped:
            return Plan(0, [], f"skipped: the teacher reads the experience file {external[1]['source']}")
        for k in range(x.runs):
            # the newest snapshot of each run, extracted or edited by a person (an edit replaces
            # the snapshot it edits, so it counts as that step being done)
            last = ctx.art.experience.newest_step(records, r, k)
            self.states.append(ctx.art.experience.load_state(r, k, last, records) if last is not None else ExperienceState(r, k, 0))
        if x.include_human and not any(n == HUMAN_STEP for (_, _, n) in records):
            rows = [row for row in ctx.store.episode_rows() if row.get("policy") == "human" and row.get("round") == r]
            if rows:
                ids = {row["episode_id"] for row in rows}
                self.humans = ctx.store.episodes(where=lambda row: row["episode_id"] in ids)
        first = min(s.step for s in self.states) + 1
        pending = ([HUMAN_STEP] if self.humans else []) + list(range(first, x.steps + 1))
        return Plan(x.steps + bool(self.humans), pending, f"{x.runs} runs x {x.steps} steps")

    def begin(self, ctx: RoundContext, r: int) -> None:
        x = ctx.cfg.extraction
        if x.curve_every and not self.skipped:  # curve points of finished steps that an interruption cut short
            records = self.records  # read by plan(); nothing has written the index since
            done_steps = min(s.step for s in self.states)
            for n in range(x.curve_every, done_steps + 1, x.curve_every):
                if not curve_from_evaluation(ctx, r, n):
                    play_curve_point(ctx, r, n, [ctx.art.experience.load_state(r, k, n, records) for k in range(x.runs)])

    def run_unit(self, ctx: RoundContext, r: int, n: int) -> str:
        if n == HUMAN_STEP:
            return self._from_humans(ctx, r)
        x = ctx.cfg.extraction
        active = [s for s in self.states if s.step < n]  # a run already past step n is never replayed
        episodes = self._play(ctx, r, n, [s.run for s in active])
        previous = [s.text(x.format) if x.accumulate else None for s in active]
        answers = self._answers(ctx, r, n, [extraction_prompt(e, p, x.format, x.worked_example, x.reasoning)
                                            for e, p in zip(episodes, previous)],
                                [s.run for s in active])
        empty = self._add_items(ctx, active, zip(episodes, answers), n)
        ctx.store.add_episodes(episodes)
        ctx.art.experience.save_snapshots(active, x.format, {s.run: e.episode_id for s, e in zip(active, episodes)},
                               answers={s.run: a for s, a in zip(active, answers)})
        ctx.store.add_metrics(ExtractStep(round=r, step=n, runs=len(active), answers_without_items=empty,
                                          items=[len(s.items) for s in self.states],
                                          wins=sum(e.success for e in episodes)))
        if x.curve_every and n % x.curve_every == 0 and not curve_from_evaluation(ctx, r, n):
            play_curve_point(ctx, r, n, self.states)
        return f"step {n}: {sum(len(s.items) for s in self.states)} items"

    # -- the pieces of a step -------------------------------------------------------------------

    def _play(self, ctx: RoundContext, r: int, n: int, runs: list[int]) -> list[Episode]:
        """Each run plays the step's map once, with the evaluation sampling and its own stream."""
        seed = extract_seed(r, n)
        streams = [stream_seed(ctx.cfg.seed, r, "extract-play", n * 100 + k) for k in runs]
        episodes = play_episodes(ctx.cfg.game, [seed] * len(runs),
                                 ctx.model_policy(ctx.cfg.evaluation.sampling, seed=streams[0]),
                                 round_index=r, stage=StageName.EXTRACT, concurrent=ctx.lm.config.batch_size, stop=ctx.stop,
                                 sampling_seeds=streams)
        for k, e in zip(runs, episodes):
            e.episode_id = f"r{r}-extract-run{k}-step{n:03d}"
            e.stage, e.tags = StageName.EXTRACT, {"run": k, "step": n}
        return episodes

    def _answers(self, ctx: RoundContext, r: int, unit: int, prompts: list[list[dict]], runs: list[int]) -> list[str]:
        x, ev = ctx.cfg.extraction, ctx.cfg.evaluation.sampling
        sampling = SamplingConfig(temperature=ev.temperature, top_p=ev.top_p, top_k=ev.top_k,
                                  max_new_tokens=x.max_new_tokens)
        generators = [torch.Generator(device=ctx.lm.device).manual_seed(
            stream_seed(ctx.cfg.seed, r, "extract-write", k * 1000 + unit)) for k in runs]
        ctx.lm.generator.reset_cache()
        size, texts = max(1, ctx.lm.config.batch_size), []
        for start in range(0, len(prompts), size):
            outs = ctx.lm.generate(prompts[start:start + size], sampling, generator=generators[start:start + size],
                                   should_stop=ctx.stop.is_set)
            texts.extend(o.text for o in outs)
        ctx.stop.check()  # an answer cut short by a stop request is not kept
        return texts

    def _add_items(self, ctx: RoundContext, states: list[ExperienceState], read, step: int) -> int:
        """Parse each answer into items, append them, cut to the budget; returns empty answers."""
        x = ctx.cfg.extraction
        empty = 0
        for state, (episode, answer) in zip(states, read):
            new = parse_extraction(answer, x.format, x.max_items)
            empty += not new
            state.items += [ExperienceItem(t, state.round, state.run, step, episode.episode_id, episode.policy.kind)
                            for t in new]
            state.items = truncate_items(state.items, x.budget_tokens, ctx.count_tokens, x.format)
            state.step = step
        return empty

    def _from_humans(self, ctx: RoundContext, r: int) -> str:
        """Step 0: every run reads the person's games of this round, in order."""
        x = ctx.cfg.extraction
        empty = 0
        for g, episode in enumerate(self.humans):
            ctx.stop.check()
            prompts = [extraction_prompt(episode, s.text(x.format) if x.accumulate else None, x.format, x.worked_example,
                                         x.reasoning)
                       for s in self.states]
            answers = self._answers(ctx, r, 900 + g, prompts, [s.run for s in self.states])
            empty += self._add_items(ctx, self.states, [(episode, a) for a in answers], HUMAN_STEP)
        ctx.art.experience.save_snapshots(self.states, x.format, {s.run: self.humans[-1].episode_id for s in self.states})
        ctx.store.add_metrics(ExtractStep(round=r, step=HUMAN_STEP, runs=x.runs, human_games=len(self.humans),
                                          answers_without_items=empty, items=[len(s.items) for s in self.states]))
        return f"read {len(self.humans)} game(s) of yours"

    def finish(self, ctx: RoundContext, r: int) -> dict:
        if self.skipped:
            what = "lessons" if ctx.cfg.consolidation.teacher_context == "lessons" else "experience file"
            return {"skipped": what, "source": self.external_source}
        return {"items": [len(s.items) for s in self.states]}

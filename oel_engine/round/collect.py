"""Deploy collection: the round's policy plays `games_per_step` games per training step, no
experience in its prompt; every turn prompt becomes a consolidation prefix. One unit per game,
all pending games in one continuous batch; a finished game is kept in a partial file at once.

The off-policy baseline, as the reference runs it: the teacher plays instead (the round's policy
with one of the K experiences in its prompt, picked per game), and the student learns from the
teacher's own answers in those games, its prompts without the experience."""

from __future__ import annotations

import random

from ..evaluation.held_out import episode_metrics
from ..metrics import CollectSummary
from ..play.prompts import remove_experience
from ..play.rollout import play_episodes
from ..play.trajectory import Episode
from .context import RoundContext
from .names import StageName
from .seeds import collect_seed, stream_seed
from .stage import Plan, Stage


def collect_id(cfg, r: int, i: int) -> str:
    per_step = cfg.consolidation.games_per_step
    return f"r{r}-collect-step{i // per_step:02d}-game{i % per_step:03d}"


def collected_games(ctx: RoundContext, r: int) -> list[Episode]:
    return ctx.store.episodes(where=lambda row: row.get("stage") == StageName.COLLECT and row.get("round") == r)


def teacher_plays(cfg) -> bool:
    return cfg.consolidation.loss == "offpolicy"


def teacher_picks(ctx: RoundContext, r: int, games: int, k: int) -> list[int]:
    """Which of the K experiences each of the round's games is played with (off-policy baseline)."""
    rng = random.Random(stream_seed(ctx.cfg.seed, r, "teacher-games"))
    return [rng.randrange(k) for _ in range(games)]


class Collect(Stage):
    name = StageName.COLLECT

    def plan(self, ctx: RoundContext, r: int) -> Plan:
        c = ctx.cfg.consolidation
        total = c.steps * c.games_per_step
        self.seeds = [collect_seed(r, *divmod(i, c.games_per_step)) for i in range(total)]
        # the off-policy baseline: the teacher's contexts, read once, and each game's pick of them
        self.contexts = ctx.teacher(r).texts if teacher_plays(ctx.cfg) else []
        self.picks = teacher_picks(ctx, r, total, len(self.contexts)) if teacher_plays(ctx.cfg) else None
        partial = {e.seed for e in ctx.art.partial_episodes(r)}
        pending = [i for i in range(total)
                   if not ctx.store.has_episode(collect_id(ctx.cfg, r, i)) and self.seeds[i] not in partial]
        return Plan(total, pending, f"{c.steps} steps x {c.games_per_step} games")

    def run(self, ctx: RoundContext, r: int, pending: list, unit_done) -> None:
        if not pending:
            return
        c = ctx.cfg.consolidation
        index_of = {self.seeds[i]: i for i in pending}

        def keep(episode: Episode) -> None:
            i = index_of[episode.seed]
            episode.episode_id = collect_id(ctx.cfg, r, i)
            episode.stage, episode.tags = StageName.COLLECT, {"consolidation_step": i // c.games_per_step}
            if self.picks is not None:
                episode.tags["experience_run"] = self.picks[i]
            ctx.art.add_partial(r, episode)
            unit_done(f"game {i + 1}: {episode.outcome.reason if episode.outcome else ''}"[:60])

        seed = stream_seed(ctx.cfg.seed, r, StageName.COLLECT)
        experiences = [self.contexts[self.picks[i]] for i in pending] if self.picks is not None else None
        play_episodes(ctx.cfg.game, [self.seeds[i] for i in pending], ctx.model_policy(ctx.cfg.deploy, seed=seed),
                      experiences=experiences, round_index=r, stage=StageName.COLLECT, concurrent=ctx.lm.config.batch_size,
                      on_episode=keep, stop=ctx.stop, sampling_seed=seed)

    def finish(self, ctx: RoundContext, r: int) -> dict:
        games = sorted(ctx.art.partial_episodes(r), key=lambda e: e.seed)
        ctx.store.add_episodes(games)
        ctx.art.clear_partial(r)
        ctx.store.add_metrics(CollectSummary(round=r, **episode_metrics(collected_games(ctx, r))))
        return {}


def build_data(ctx: RoundContext, r: int) -> list[dict]:
    """Every turn prompt of the round's deploy games, each with one of the K experiences (picked
    at random per prefix, seeded): the SDFT schema, prompt + privileged_context."""
    if ctx.art.data_file(r).exists():
        return ctx.art.read_data(r)
    teacher = ctx.teacher(r)
    experiences, source = teacher.texts, teacher.source
    rng = random.Random(stream_seed(ctx.cfg.seed, r, "experience-pick"))
    records = []
    cut = ctx.cfg.deploy.max_new_tokens
    for e in sorted(collected_games(ctx, r), key=lambda e: e.episode_id):
        played_with = e.tags.get("experience_run")  # the off-policy baseline: the teacher played
        for t in e.turns:
            k = rng.randrange(len(experiences)) if played_with is None else played_with
            record = {"prompt": t.prompt, "privileged_context": experiences[k], "experience_run": k,
                      "experience_source": source,
                      "step": e.tags.get("consolidation_step", 0), "episode_id": e.episode_id,
                      "turn": t.index, "round": r}
            if played_with is not None:  # the student learns the teacher's own answer, seen without the experience
                record.update(prompt=remove_experience(t.prompt, experiences[k]), response=t.response,
                              response_ended=t.response_tokens < cut)
            records.append(record)
    ctx.art.write_data(r, records)
    return records

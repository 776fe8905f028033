"""The OEL round, stage by stage, resumable at every unit of work.

Round r: (round 0 only) evaluate the base model -> extract experience (K runs x N steps, with
the in-context curve) -> evaluate with experience in context -> collect deploy games -> build
the consolidation data -> consolidate (T optimizer steps) -> save the adapter, merge it ->
evaluate the consolidated model, which is round r+1's policy AND teacher.

Every unit (a game, an extraction step, an optimizer step, an evaluation sample) is saved when
it completes; a stage that is re-entered skips what is saved and replays the rest with the same
random streams, so an interrupted run ends with the same artifacts as an uninterrupted one.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from .artifacts import RunArtifacts
from .config import EVAL_SEED_BASE, LoopConfig, SamplingConfig, eval_seeds
from .consolidation.trainer import Distiller, Prefix, peak_memory_mb
from .errors import OelError
from .evaluation import episode_metrics
from .events import EventSink, MetricsRecorded, Progress, StageFinished, StageStarted, StopFlag, ignore
from .experience import ExperienceItem, ExperienceState, extraction_prompt, parse_extraction, truncate_items
from .model.lm import LanguageModel
from .policies import ModelPolicy
from .rollout import play_episodes
from .storage import RunStore
from .trajectory import Episode

# Seed layout below EVAL_SEED_BASE: 100,000 map seeds per round; collection first, extraction after.
ROUND_SEEDS = 100_000
EXTRACT_OFFSET = 50_000


def collect_seed(round_index: int, step: int, game: int) -> int:
    return round_index * ROUND_SEEDS + step * 1_000 + game


def extract_seed(round_index: int, run: int, step: int) -> int:
    return round_index * ROUND_SEEDS + EXTRACT_OFFSET + run * 1_000 + step


def stream_seed(run_seed: int, round_index: int, stage: str, unit: int = 0) -> int:
    """A reproducible seed for one random stream of the run."""
    code = sum((i + 1) * ord(c) for i, c in enumerate(stage))
    return (run_seed * 1_000_003 + round_index * 10_007 + code * 101 + unit) % (2**31 - 1)


class RoundRunner:
    """Runs the stages of a run's rounds with one loaded model."""

    def __init__(self, store: RunStore, config: LoopConfig, lm: LanguageModel, *,
                 on_event: EventSink = ignore, stop: StopFlag | None = None,
                 status: Callable[[str], None] | None = None):
        self.store, self.cfg, self.lm = store, config, lm
        self.art = RunArtifacts(store)
        self.on_event, self.stop = on_event, stop or StopFlag()
        self.status = status or (lambda _: None)
        self.policy_round = 0  # rounds merged into the loaded weights
        self.stage_seconds: dict[str, float] = {}

    # -- the policy ---------------------------------------------------------------------------------

    def prepare_policy(self, round_index: int) -> None:
        """Make the loaded weights round `round_index`'s starting policy: the base with the adapters
        of every earlier round merged in (reloading the base if later rounds are merged already)."""
        from peft import PeftModel

        if self.policy_round > round_index:
            from .model.loader import load_language_model

            self.status(f"Reloading the base model to get round {round_index}'s starting policy...")
            self.lm = load_language_model(self.lm.config, status=self.status)
            self.policy_round = 0
        while self.policy_round < round_index:
            folder = self.art.adapter_dir(self.policy_round)
            if not (folder / "adapter_config.json").is_file():
                raise OelError(f"round {self.policy_round} has no adapter in {folder}; cannot resume round {round_index}")
            self.status(f"Merging the round {self.policy_round} adapter into the policy...")
            merged = PeftModel.from_pretrained(self.lm.model, str(folder)).merge_and_unload()
            self.lm.model = merged
            self.lm.generator.model = merged
            self.lm.generator.reset_cache()
            self.policy_round += 1

    def _model_policy(self, sampling: SamplingConfig, seed: int) -> ModelPolicy:
        policy = ModelPolicy(self.lm, sampling, seed=seed)
        policy.should_stop = self.stop.is_set
        return policy

    def _timed(self, key: str, started: float) -> None:
        self.stage_seconds[key] = self.stage_seconds.get(key, 0.0) + time.perf_counter() - started

    # -- the whole loop --------------------------------------------------------------------------------

    def run(self, rounds: int | None = None) -> None:
        for r in range(self.art.rounds_done(), rounds or self.cfg.rounds):
            self.run_round(r)

    def run_round(self, r: int) -> None:
        self.stage_seconds = {}  # seconds are reported per round
        self.prepare_policy(r)
        if r == 0:
            self.evaluate(r, "base")
        self.extract(r)
        self.evaluate(r, "in_context")
        self.consolidate(r)
        self.evaluate(r, "consolidated")

    # -- evaluation ----------------------------------------------------------------------------------

    def evaluate(self, r: int, kind: str) -> dict:
        """Held-out pass rate etc. for `kind` base | in_context | consolidated, one record per sample."""
        stage = f"eval_{kind}"
        if self.art.stage_done(r, stage):
            return self._eval_summary(r, kind)
        if kind == "consolidated":
            self.consolidate(r)  # makes sure the adapter is trained and merged
        else:
            self.prepare_policy(r)
        ev = self.cfg.evaluation
        experiences = self._consolidation_experiences(r) if kind == "in_context" else []
        done = {m["sample"] for m in self.store.metrics()
                if m.get("phase") == "eval" and m.get("round") == r and m.get("kind") == kind and "sample" in m}
        started = time.perf_counter()
        for sample in range(ev.samples):
            if sample in done:
                continue
            self.stop.check()
            experience = experiences[sample % len(experiences)] if experiences else None
            policy = self._model_policy(ev.sampling, seed=stream_seed(self.cfg.seed, r, stage, sample))
            episodes = play_episodes(
                self.cfg.game, eval_seeds(ev.episodes), policy, experience=experience, round_index=r,
                stage=f"eval:{kind}", concurrent=self.lm.config.batch_size, on_event=self.on_event, stop=self.stop,
                sampling_seed=stream_seed(self.cfg.seed, r, stage, sample),
            )
            record = {"phase": "eval", "round": r, "kind": kind, "sample": sample,
                      "experience_run": (sample % len(experiences)) if experiences else None,
                      **episode_metrics(episodes)}
            self.store.add_metrics(record)
        self._timed(stage, started)
        summary = self._eval_summary(r, kind)
        self.store.add_metrics({**summary, "seconds": round(self.stage_seconds.get(stage, 0.0), 1),
                                "peak_memory_mb": round(peak_memory_mb(self.lm.device), 1)})
        self.art.mark_done(r, stage)
        return summary

    def _eval_summary(self, r: int, kind: str) -> dict:
        import statistics

        samples = [m for m in self.store.metrics()
                   if m.get("phase") == "eval" and m.get("round") == r and m.get("kind") == kind and "sample" in m]
        out = {"phase": "eval", "round": r, "kind": kind, "samples": len(samples),
               "episodes": samples[0]["episodes"] if samples else 0}
        for key in ("pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns"):
            values = [s[key] for s in samples]
            out[key] = round(statistics.fmean(values), 4) if values else 0.0
            out[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
        return out

    # -- extraction ------------------------------------------------------------------------------------

    def extract(self, r: int) -> None:
        if self.art.stage_done(r, "extract"):
            return
        self.prepare_policy(r)
        x = self.cfg.extraction
        records = self.art.snapshot_records(r)
        humans = [e for e in self.store.episodes() if e.policy.kind == "human" and e.round == r] if x.include_human else []
        if humans and not any(n == 0 for (_, _, n) in records):
            self._extract_from_humans(r, humans)
            records = self.art.snapshot_records(r)
        states = []
        for k in range(x.runs):
            last = max((n for (rr, kk, n), rec in records.items() if kk == k and rec.get("kind") == "extract"), default=None)
            states.append(self.art.load_state(r, k, last, records) if last is not None else ExperienceState(r, k, 0))
        first = min(s.step for s in states) + 1
        self.on_event(StageStarted("extract", x.steps, f"{x.runs} runs x {x.steps} steps"))
        self.on_event(Progress("extract", first - 1, x.steps))
        started = time.perf_counter()
        if x.curve_every:  # curve points of finished steps that an interruption cut short
            for n in range(x.curve_every, first, x.curve_every):
                self._curve_point(r, n, [self.art.load_state(r, k, n, records) for k in range(x.runs)])
        count_tokens = lambda text: len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
        for n in range(first, x.steps + 1):
            self.stop.check()
            # 1. each run plays one game with the current policy, no experience in its prompt
            play_policy = self._model_policy(self.cfg.deploy, seed=stream_seed(self.cfg.seed, r, "extract-play", n))
            seeds = [extract_seed(r, k, n) for k in range(x.runs)]
            episodes = play_episodes(self.cfg.game, seeds, play_policy, round_index=r, stage="extract",
                                     concurrent=self.lm.config.batch_size, stop=self.stop,
                                     sampling_seed=stream_seed(self.cfg.seed, r, "extract-play", n))
            for k, e in enumerate(episodes):
                e.episode_id = f"r{r}-extract-run{k}-step{n:03d}"
                e.stage, e.tags = "extract", {"run": k, "step": n}
            # 2. the same model reads each trajectory and writes new items
            previous = [s.text(x.format) if x.accumulate else None for s in states]
            prompts = [extraction_prompt(e, p, x.format) for e, p in zip(episodes, previous)]
            answers = self._extraction_answers(r, prompts, unit=n)
            empty = 0
            for k, (state, episode, answer) in enumerate(zip(states, episodes, answers)):
                new = parse_extraction(answer.text, x.format)
                empty += not new
                state.items += [ExperienceItem(t, r, k, n, episode.episode_id, episode.policy.kind) for t in new]
                state.items = truncate_items(state.items, x.budget_tokens, count_tokens, x.format)
                state.step = n
            self.store.add_episodes(episodes)
            self.art.save_snapshots(states, x.format, {k: e.episode_id for k, e in enumerate(episodes)},
                                    answers={k: a.text for k, a in enumerate(answers)})
            self.store.add_metrics({"phase": "extract", "round": r, "step": n, "runs": x.runs,
                                    "answers_without_items": empty,
                                    "items": [len(s.items) for s in states],
                                    "wins": sum(e.success for e in episodes)})
            self.on_event(Progress("extract", n, x.steps, f"step {n}: {sum(len(s.items) for s in states)} items"))
            if x.curve_every and n % x.curve_every == 0:
                self._curve_point(r, n, states)
        self._timed("extract", started)
        self.on_event(StageFinished("extract", self.stage_seconds["extract"]))
        self.store.add_metrics({"phase": "stage", "round": r, "stage": "extract",
                                "seconds": round(self.stage_seconds["extract"], 1),
                                "peak_memory_mb": round(peak_memory_mb(self.lm.device), 1)})
        self.art.mark_done(r, "extract")

    def _extraction_answers(self, r: int, prompts: list[list[dict]], unit: int):
        x = self.cfg.extraction
        sampling = SamplingConfig(temperature=self.cfg.deploy.temperature, top_p=self.cfg.deploy.top_p,
                                  top_k=self.cfg.deploy.top_k, max_new_tokens=x.max_new_tokens)
        import torch

        generators = [torch.Generator(device=self.lm.device).manual_seed(stream_seed(self.cfg.seed, r, "extract-write", k * 1000 + unit))
                      for k in range(len(prompts))]
        self.lm.generator.reset_cache()
        answers = self.lm.generate(prompts, sampling, generator=generators, should_stop=self.stop.is_set)
        self.stop.check()
        return answers

    def _extract_from_humans(self, r: int, humans: list[Episode]) -> None:
        """Step 0: every run reads the person's games of this round, in order (one unit of work)."""
        x = self.cfg.extraction
        count_tokens = lambda text: len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
        states = [ExperienceState(r, k, 0) for k in range(x.runs)]
        empty = 0
        for g, episode in enumerate(humans):
            prompts = [extraction_prompt(episode, s.text(x.format) if x.accumulate else None, x.format) for s in states]
            answers = self._extraction_answers(r, prompts, unit=900 + g)
            for state, answer in zip(states, answers):
                new = parse_extraction(answer.text, x.format)
                empty += not new
                state.items += [ExperienceItem(t, r, state.run, 0, episode.episode_id, "human") for t in new]
                state.items = truncate_items(state.items, x.budget_tokens, count_tokens, x.format)
        self.art.save_snapshots(states, x.format, {k: humans[-1].episode_id for k in range(x.runs)})
        self.store.add_metrics({"phase": "extract", "round": r, "step": 0, "runs": x.runs, "human_games": len(humans),
                                "answers_without_items": empty, "items": [len(s.items) for s in states]})

    def _curve_point(self, r: int, n: int, states: list[ExperienceState]) -> None:
        """Held-out pass rate with each run's experience after step n (the in-context curve)."""
        x, ev = self.cfg.extraction, self.cfg.evaluation
        done = {m["run"] for m in self.store.metrics()
                if m.get("phase") == "curve" and m.get("round") == r and m.get("step") == n}
        for state in states:
            if state.run in done:
                continue
            policy = self._model_policy(ev.sampling, seed=stream_seed(self.cfg.seed, r, "curve", n))
            episodes = play_episodes(self.cfg.game, eval_seeds(x.curve_episodes), policy,
                                     experience=state.text(x.format), round_index=r, stage="curve",
                                     concurrent=self.lm.config.batch_size, stop=self.stop,
                                     sampling_seed=stream_seed(self.cfg.seed, r, "curve", n * 100 + state.run))
            self.store.add_metrics({"phase": "curve", "round": r, "step": n, "run": state.run,
                                    **episode_metrics(episodes)})

    def _consolidation_experiences(self, r: int) -> list[str]:
        x = self.cfg.extraction
        return self.art.experiences_for_consolidation(r, x.runs, x.consolidation_step, x.format)

    # -- collection and consolidation --------------------------------------------------------------------

    def collect(self, r: int) -> None:
        """Deploy games with the round's policy (no experience): games_per_step per training step."""
        if self.art.stage_done(r, "collect"):
            return
        self.prepare_policy(r)
        c = self.cfg.consolidation
        total = c.steps * c.games_per_step
        partial = {e.seed: e for e in self.art.partial_episodes(r)}
        saved = {i for i in range(total) if self.store.has_episode(self._collect_id(r, i))}
        self.on_event(StageStarted("collect", total, f"{c.steps} steps x {c.games_per_step} games"))
        started = time.perf_counter()
        seeds = [collect_seed(r, *divmod(i, c.games_per_step)) for i in range(total)]
        missing = [i for i in range(total) if i not in saved and seeds[i] not in partial]
        index_of = {seed: i for i, seed in enumerate(seeds)}
        done_count = total - len(missing)
        self.on_event(Progress("collect", done_count, total))

        def keep(episode: Episode) -> None:
            nonlocal done_count
            i = index_of[episode.seed]
            episode.episode_id = self._collect_id(r, i)
            episode.stage, episode.tags = "collect", {"consolidation_step": i // c.games_per_step}
            self.art.add_partial(r, episode)
            done_count += 1
            self.on_event(Progress("collect", done_count, total))

        if missing:
            policy = self._model_policy(self.cfg.deploy, seed=stream_seed(self.cfg.seed, r, "collect"))
            play_episodes(self.cfg.game, [seeds[i] for i in missing], policy,
                          round_index=r, stage="collect", concurrent=self.lm.config.batch_size, on_episode=keep,
                          stop=self.stop, sampling_seed=stream_seed(self.cfg.seed, r, "collect"))
        games = sorted(self.art.partial_episodes(r), key=lambda e: e.seed)
        self.store.add_episodes(games)
        self.art.clear_partial(r)
        self._timed("collect", started)
        self.on_event(StageFinished("collect", self.stage_seconds["collect"]))
        collected = [e for e in self.store.episodes() if e.stage == "collect" and e.round == r]
        self.store.add_metrics({"phase": "collect", "round": r, **episode_metrics(collected),
                                "seconds": round(self.stage_seconds["collect"], 1)})
        self.art.mark_done(r, "collect")

    def _collect_id(self, r: int, i: int) -> str:
        c = self.cfg.consolidation
        return f"r{r}-collect-step{i // c.games_per_step:02d}-game{i % c.games_per_step:03d}"

    def build_data(self, r: int) -> list[dict]:
        """Every turn prompt of the round's deploy games, each with one of the K experiences
        (picked at random per prefix, seeded): the SDFT schema, prompt + privileged_context."""
        if self.art.data_file(r).exists():
            return self.art.read_data(r)
        experiences = self._consolidation_experiences(r)
        rng = random.Random(stream_seed(self.cfg.seed, r, "experience-pick"))
        games = sorted((e for e in self.store.episodes() if e.stage == "collect" and e.round == r),
                       key=lambda e: e.episode_id)
        records = []
        for e in games:
            for t in e.turns:
                k = rng.randrange(len(experiences))
                records.append({"prompt": t.prompt, "privileged_context": experiences[k], "experience_run": k,
                                "step": e.tags.get("consolidation_step", 0), "episode_id": e.episode_id,
                                "turn": t.index, "round": r})
        self.art.write_data(r, records)
        return records

    def consolidate(self, r: int) -> None:
        if self.art.stage_done(r, "consolidate"):
            if self.policy_round <= r:
                self.prepare_policy(r + 1)
            return
        self.prepare_policy(r)
        self.extract(r)
        self.collect(r)
        data = self.build_data(r)
        c = self.cfg.consolidation
        distiller = Distiller(self.lm, c)
        start_step = 0
        checkpoint = self.art.load_checkpoint(r)
        if checkpoint is not None:
            distiller.load_state(checkpoint)
            start_step = checkpoint["step"] + 1
        # metrics of steps after the checkpoint will be recomputed: drop them, no duplicates
        self.store.drop_metrics(lambda m: m.get("phase") == "consolidate" and m.get("round") == r
                                and m.get("step", -1) >= start_step)
        self.on_event(StageStarted("consolidate", c.steps, f"{c.loss} loss, LoRA r{c.lora_rank}"))
        self.on_event(Progress("consolidate", start_step, c.steps))
        started = time.perf_counter()
        for step in range(start_step, c.steps):
            self.stop.check()
            rows = [d for d in data if d["step"] == step]
            prefixes = [Prefix(d["prompt"], d["privileged_context"], d["episode_id"],
                               stream_seed(self.cfg.seed, r, "student", step * 10_000 + i)) for i, d in enumerate(rows)]
            if not prefixes:
                metrics = {"prefixes": 0}
            else:
                metrics = distiller.step(prefixes, should_stop=self.stop.is_set)
                self.stop.check()
            record = {"phase": "consolidate", "round": r, "step": step, **metrics}
            self.store.add_metrics(record)
            self.on_event(MetricsRecorded("consolidate", record))
            if (step + 1) % c.checkpoint_every == 0 or step == c.steps - 1:
                self.art.save_checkpoint(r, step, distiller.state())
            self.on_event(Progress("consolidate", step + 1, c.steps, f"loss {metrics.get('loss', 0):.4f}"))
        self.art.save_adapter(r, distiller.save_adapter)
        distiller.merge()
        self.policy_round = r + 1
        self._timed("consolidate", started)
        self.on_event(StageFinished("consolidate", self.stage_seconds["consolidate"]))
        self.store.add_metrics({"phase": "stage", "round": r, "stage": "consolidate",
                                "seconds": round(self.stage_seconds["consolidate"], 1),
                                "peak_memory_mb": round(peak_memory_mb(self.lm.device), 1)})
        self.art.mark_done(r, "consolidate")


__all__ = ["RoundRunner", "collect_seed", "extract_seed", "stream_seed", "EVAL_SEED_BASE"]

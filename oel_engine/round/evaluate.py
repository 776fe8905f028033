"""Held-out evaluation: base, with experience in context, or consolidated; one unit per sample.

Each sample also reads the move-probability probe on the maps' start states with the sample's
prompt (no sampling involved, so it is read once per distinct experience and reused). The
in-context evaluation also gives the in-context curve its point at the consolidation step: a
sample reading run k's experience as extracted at that step has played the curve's maps with it.
"""

from __future__ import annotations

from dataclasses import replace

from ..evaluation.held_out import episode_metrics, play_samples
from ..evaluation.move_probe import ProbeResult, held_out_probe, start_states
from ..events import Progress, StageStarted
from ..metrics import CurvePoint, EvalKind, EvalSample, EvalSummary, OodSample
from .context import RoundContext
from .extract import curve_from_evaluation, play_curve_point
from .names import StageName
from .seeds import stream_seed
from .stage import Plan, Stage


def in_context_samples(samples: int, experiences: int) -> int:
    """Samples to play: with K experiences in context, every one of them read by as many samples
    (sample s reads experience s mod K), so `samples` rounded up to a multiple of K."""
    if experiences <= 1:
        return samples
    return -(-samples // experiences) * experiences


class Evaluate(Stage):
    def __init__(self, kind: EvalKind):
        self.kind = kind
        self.name = StageName.evaluation(kind)
        self.needs = {EvalKind.BASE: (), EvalKind.IN_CONTEXT: (StageName.EXTRACT,),
                      EvalKind.CONSOLIDATED: (StageName.CONSOLIDATE,)}[kind]

    def applies(self, r: int) -> bool:
        return self.kind != EvalKind.BASE or r == 0  # round r>0 starts from round r-1's consolidated model

    def policy_round(self, r: int) -> int:
        return r + 1 if self.kind == EvalKind.CONSOLIDATED else r

    def plan(self, ctx: RoundContext, r: int) -> Plan:
        done = {s.sample for s in ctx.metrics().of(EvalSample, round=r, kind=self.kind)}
        self.experiences = ctx.teacher(r).texts if self.kind == EvalKind.IN_CONTEXT else []
        samples = in_context_samples(ctx.cfg.evaluation.samples, len(self.experiences))
        self.probed: dict[str | None, ProbeResult] = {}
        self.probe_states = None  # the maps' start states, built once for every experience
        return Plan(samples, [s for s in range(samples) if s not in done],
                    f"{ctx.cfg.evaluation.episodes} held-out maps x {samples} samples")

    def run(self, ctx: RoundContext, r: int, pending: list, unit_done) -> None:
        """All pending samples through the one held-out evaluation (`evaluation/held_out.py`),
        each recorded as soon as its last game ends."""
        if not pending:
            return
        ev = ctx.cfg.evaluation
        streams = [stream_seed(ctx.cfg.seed, r, self.name, sample) for sample in pending]
        play_samples(
            ctx.cfg.game, ev.seeds(), ctx.model_policy(ev.sampling, seed=streams[0]),
            [(stream, self._experience(sample)[1]) for stream, sample in zip(streams, pending)],
            lambda i, games: unit_done(self._record(ctx, r, pending[i], games)),
            round_index=r, stage=self.name, concurrent=ctx.lm.config.batch_size,
            on_event=ctx.games_events(self.name), stop=ctx.stop,
        )

    def _experience(self, sample: int) -> tuple[int | None, str | None]:
        if not self.experiences:
            return None, None
        run = sample % len(self.experiences)
        return run, self.experiences[run]

    def _record(self, ctx: RoundContext, r: int, sample: int, episodes) -> str:
        experience_run, experience = self._experience(sample)
        probe = self._probe(ctx, experience).summary() if ctx.cfg.evaluation.probe else {}
        probe.pop("probe_states", None)
        record = EvalSample(round=r, kind=self.kind, sample=sample, experience_run=experience_run,
                            **episode_metrics(episodes), **probe)
        ctx.store.add_metrics(record)
        if self.kind == EvalKind.IN_CONTEXT and experience_run is not None:
            self._curve_point(ctx, r, experience_run, experience, episodes)
        probed = "" if record.good_move_prob is None else f", good-move probability {record.good_move_prob:.2f}"
        return f"sample {sample}: pass rate {record.pass_rate:.1%}{probed}"

    def _curve_point(self, ctx: RoundContext, r: int, run: int, experience: str, episodes) -> None:
        """Run `run`'s curve point at the consolidation step from this sample's games on the
        curve's maps, when the sample read exactly that run's extracted experience (not, e.g.,
        with a person's items added: `finish` plays those points as extraction would)."""
        x = ctx.cfg.extraction
        n = x.consolidation_step
        if run >= x.runs or not curve_from_evaluation(ctx, r, n):
            return
        if any(p.run == run for p in ctx.metrics().of(CurvePoint, round=r, step=n)):
            return
        if experience != ctx.art.experience.load_state(r, run, n).text(x.format):
            return
        maps = set(ctx.cfg.evaluation.seeds(x.curve_episodes))
        games = [e for e in episodes if e.seed in maps]
        ctx.store.add_metrics(CurvePoint(round=r, step=n, run=run, **episode_metrics(games)))

    def _missing_curve_points(self, ctx: RoundContext, r: int) -> None:
        """The consolidation step's curve points no sample could give, played as extraction would."""
        x = ctx.cfg.extraction
        n = x.consolidation_step
        if not curve_from_evaluation(ctx, r, n):
            return
        done = {p.run for p in ctx.metrics().of(CurvePoint, round=r, step=n)}
        missing = [k for k in range(x.runs) if k not in done]
        if missing:
            play_curve_point(ctx, r, n, [ctx.art.experience.load_state(r, k, n) for k in missing])

    def _probe(self, ctx: RoundContext, experience: str | None) -> ProbeResult:
        if experience not in self.probed:
            if self.probe_states is None:
                ev = ctx.cfg.evaluation
                self.probe_states = start_states(ctx.cfg.game, ev.probe_maps or ev.episodes, ev.held_out)
            self.probed[experience] = held_out_probe(ctx.lm, self.probe_states, experience, ctx.stop,
                                                     ctx.cfg.evaluation.probe_spellings)
        return self.probed[experience]

    def finish(self, ctx: RoundContext, r: int) -> dict:
        if self.kind == EvalKind.IN_CONTEXT:
            self._missing_curve_points(ctx, r)
        if self.kind != EvalKind.IN_CONTEXT and ctx.cfg.evaluation.ood_samples:
            self._ood(ctx, r)
        samples = sorted(ctx.metrics().of(EvalSample, round=r, kind=self.kind), key=lambda s: s.sample)
        ctx.store.add_metrics(EvalSummary.of_samples(r, self.kind, samples))
        return {}

    def _ood(self, ctx: RoundContext, r: int) -> None:
        """The instruction-following probe on this stage's model, one record per seed (seeds
        0..n-1 for every model, so base and consolidated are compared on the same streams)."""
        from ..evaluation.instructions.probe import OOD_SAMPLING, run_probe

        ev = ctx.cfg.evaluation
        done = {s.sample for s in ctx.metrics().of(OodSample, round=r, kind=self.kind)}
        todo = [s for s in range(ev.ood_samples) if s not in done]
        if not todo:
            return
        label = f"{self.name} instruction probe"
        ctx.on_event(StageStarted(label, 0, f"{len(todo)} seed(s)"))
        sampling = replace(OOD_SAMPLING, max_new_tokens=ev.ood_max_new_tokens)
        for seed in todo:  # one record per seed: a stop loses at most the seed being answered
            [score] = run_probe(ctx.lm, [seed], sampling, stop=ctx.stop,
                                on_batch=lambda done, total: ctx.on_event(Progress(label, done, total)))
            ctx.store.add_metrics(OodSample(round=r, kind=self.kind, sample=seed, accuracy=score.accuracy,
                                            instruction_accuracy=score.instruction_accuracy, prompts=score.prompts,
                                            mean_response_tokens=score.mean_response_tokens))

"""Typed metrics records: what a run writes to metrics.jsonl, and one way to read them back.

Every record is a dataclass with a `phase` (a string enum). On disk a record is its fields plus
"phase" and "time", one JSON object per line. `MetricsLog.of(Type, round=r, ...)` is the one
query helper; `mean_sd` is the one mean ± spread helper.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Iterable, TypeVar


class Phase(StrEnum):
    EVAL_SAMPLE = "eval_sample"  # one evaluation pass over the held-out maps (one sampling seed)
    EVAL = "eval"  # mean ± sd over an evaluation's samples
    CURVE = "curve"  # held-out pass rate with one extraction run's experience after step n
    EXTRACT = "extract"  # one extraction step over the K runs
    COLLECT = "collect"  # the round's deploy games
    CONSOLIDATE = "consolidate"  # one optimizer step
    STAGE = "stage"  # a finished stage: seconds and peak memory
    PRECISION = "precision"  # what the precision choices (consolidation, sampling) were based on
    OOD = "ood"  # one pass of the instruction-following probe (one sampling seed)


class EvalKind(StrEnum):
    BASE = "base"
    IN_CONTEXT = "in_context"
    CONSOLIDATED = "consolidated"
    STANDALONE = "standalone"  # `oel eval --run`


EPISODE_METRICS = ("pass_rate", "legal_action_rate", "mean_response_tokens", "mean_turns")
# The move-probability probe (probe.py); None in records written before it existed or with it off.
PROBE_METRICS = ("good_move_prob", "move_mass")


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with fewer than two values)."""
    values = list(values)
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass(kw_only=True)
class Record:
    round: int = 0
    PHASE = None  # set by each subclass

    def to_dict(self) -> dict:
        return {"phase": str(self.PHASE), **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(kw_only=True)
class EpisodeStats(Record):
    """What `evaluation.episode_metrics` measures over a set of games."""

    episodes: int = 0
    pass_rate: float = 0.0
    legal_action_rate: float = 0.0
    mean_response_tokens: float = 0.0
    mean_turns: float = 0.0


@dataclass(kw_only=True)
class EvalSample(EpisodeStats):
    PHASE = Phase.EVAL_SAMPLE
    kind: str = EvalKind.BASE
    sample: int = 0
    experience_run: int | None = None
    good_move_prob: float | None = None  # probe on the held-out start states, same prompt as the games
    good_move_prob_se: float | None = None  # its standard error over those states
    move_mass: float | None = None


@dataclass(kw_only=True)
class EvalSummary(Record):
    """Mean and spread over an evaluation's samples (`<metric>` and `<metric>_std`)."""

    PHASE = Phase.EVAL
    kind: str = EvalKind.BASE
    samples: int = 0
    episodes: int = 0
    pass_rate: float = 0.0
    pass_rate_std: float = 0.0
    legal_action_rate: float = 0.0
    legal_action_rate_std: float = 0.0
    mean_response_tokens: float = 0.0
    mean_response_tokens_std: float = 0.0
    mean_turns: float = 0.0
    mean_turns_std: float = 0.0
    good_move_prob: float | None = None
    good_move_prob_std: float | None = None  # over samples (0 when every sample had the same prompt)
    good_move_prob_se: float | None = None  # mean standard error over the probed states
    move_mass: float | None = None
    move_mass_std: float | None = None
    extra: dict = field(default_factory=dict)  # free context (`oel eval`: game, policy, experience)

    @classmethod
    def of_samples(cls, round_index: int, kind: str, samples: list[EpisodeStats], **extra) -> "EvalSummary":
        out = cls(round=round_index, kind=kind, samples=len(samples), episodes=samples[0].episodes if samples else 0,
                  extra=extra)
        for key in EPISODE_METRICS + PROBE_METRICS:
            values = [getattr(s, key, None) for s in samples]
            if None in values or not values:
                continue
            mean, sd = mean_sd(values)
            setattr(out, key, round(mean, 4))
            setattr(out, f"{key}_std", round(sd, 4))
        ses = [getattr(s, "good_move_prob_se", None) for s in samples]
        if ses and None not in ses:
            out.good_move_prob_se = round(mean_sd(ses)[0], 4)
        return out

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(d.pop("extra"))
        return d

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        extra = {k: v for k, v in d.items() if k not in names and k not in ("phase", "time")}
        return cls(**{k: v for k, v in d.items() if k in names and k != "extra"}, extra=extra)


@dataclass(kw_only=True)
class CurvePoint(EpisodeStats):
    PHASE = Phase.CURVE
    step: int = 0
    run: int = 0


@dataclass(kw_only=True)
class ExtractStep(Record):
    PHASE = Phase.EXTRACT
    step: int = 0
    runs: int = 0
    answers_without_items: int = 0
    items: list[int] = field(default_factory=list)  # items per run after the step
    wins: int = 0
    human_games: int = 0


@dataclass(kw_only=True)
class CollectSummary(EpisodeStats):
    PHASE = Phase.COLLECT


@dataclass(kw_only=True)
class ConsolidateStep(Record):
    PHASE = Phase.CONSOLIDATE
    step: int = 0
    prefixes: int = 0
    loss: float | None = None  # None: no prefixes, or a skipped (non-finite) step
    reverse_kl: float | None = None
    topk_mass: float | None = None
    grad_norm: float | None = None
    skipped: bool = False  # the gradient norm was not finite: no optimizer step was taken
    mean_response_tokens: float = 0.0
    sample_seconds: float = 0.0
    train_seconds: float = 0.0
    seconds: float = 0.0
    peak_memory_mb: float = 0.0


@dataclass(kw_only=True)
class StageTime(Record):
    PHASE = Phase.STAGE
    stage: str = ""
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    detail: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class PrecisionChoice(Record):
    PHASE = Phase.PRECISION
    use: str = "consolidation"  # consolidation (autocast for training) | sampling (the weights rollouts read)
    device: str = "cpu"
    cpu: str = ""
    choice: str = "float32"  # float32 | bf16
    reason: str = ""
    float32_seconds: float | None = None
    bf16_seconds: float | None = None

    @property
    def bf16_speedup(self) -> float | None:
        if not self.float32_seconds or not self.bf16_seconds:
            return None
        return self.float32_seconds / self.bf16_seconds


@dataclass(kw_only=True)
class OodSample(Record):
    """The instruction-following probe (oel_engine.evaluation.instructions) on one model with one sampling seed."""

    PHASE = Phase.OOD
    kind: str = EvalKind.BASE  # base, or consolidated (round r's consolidated model)
    sample: int = 0
    accuracy: float = 0.0  # prompt-level strict accuracy
    instruction_accuracy: float = 0.0
    prompts: int = 0
    mean_response_tokens: float = 0.0


RECORD_TYPES = {t.PHASE.value: t for t in (EvalSample, EvalSummary, CurvePoint, ExtractStep, CollectSummary,
                                          ConsolidateStep, StageTime, PrecisionChoice, OodSample)}


def parse_record(d: dict) -> Record | None:
    """A typed record from one metrics line, or None for a line of an unknown kind."""
    phase = d.get("phase")
    if phase == "eval" and "sample" in d:  # runs written before eval samples had their own phase
        phase = Phase.EVAL_SAMPLE.value
    cls = RECORD_TYPES.get(phase)
    if cls is None:
        return None
    try:
        return cls.from_dict(d)
    except (TypeError, ValueError):
        return None


R = TypeVar("R", bound=Record)


class MetricsLog:
    """A run's metrics, typed. `of(Type, **where)` filters by type and field values."""

    def __init__(self, records: list[Record]):
        self.records = records

    @classmethod
    def from_dicts(cls, dicts: Iterable[dict]) -> "MetricsLog":
        return cls([r for r in map(parse_record, dicts) if r is not None])

    def of(self, record_type: type[R], /, **where) -> list[R]:
        return [r for r in self.records if type(r) is record_type and all(getattr(r, k) == v for k, v in where.items())]

    def last(self, record_type: type[R], /, **where) -> R | None:
        found = self.of(record_type, **where)
        return found[-1] if found else None

    def rounds(self) -> list[int]:
        return sorted({r.round for r in self.records})

    def append(self, record: Record) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

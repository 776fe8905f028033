"""One consolidation step: the student samples, the frozen teacher scores, LoRA moves.

The student is the model with a LoRA adapter; the teacher is the SAME weights with the adapter
disabled (the round's starting model), whose prompt carries the experience. No second copy of
the model is loaded. Teacher and student read the student's exact response token ids appended
to their own prompt ids, so the scored tokens line up one to one. How the scoring passes
save work (the same arithmetic, rounding aside): `scoring.py` and `frozen_weights.py`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch

from ..config import ConsolidationConfig, SamplingConfig
from ..errors import OelError
from ..fileio import log
from ..model.lm import LanguageModel
from ..model.precision import choose_autocast
from ..play.prompts import insert_experience
from .frozen_weights import FrozenLinearsInDtype
from .losses import full_reverse_kl, topk_forward_kl, topk_reverse_kl
from .scoring import SharedPrefix, full_attention_only, response_logits, shared_length


@dataclass
class Prefix:
    """A turn prompt (no experience) and the experience the teacher gets with it."""

    prompt: list[dict]
    experience: str
    key: str  # groups prefixes of one game (for KV reuse while sampling)
    sampling_seed: int
    response: str | None = None  # the off-policy baseline: the teacher's own answer in its game
    response_ended: bool = True  # that answer ended with an end token (else it was cut)


@dataclass
class Scored:
    student_ids: list[int]
    teacher_ids: list[int]
    response_len: int
    context: str = ""  # the teacher's experience: rows with the same one share its prefix


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Distiller:
    """Owns the trained weights (a LoRA adapter, or every weight with `update="full"`) and the
    optimizer for one round.

    While it lives, `lm` holds the model being trained. It ends in one of two ways: `merge()`
    makes the trained weights the next round's policy, `detach()` drops them (a stopped or failed
    round), so the loaded model never keeps a half-trained adapter switched on."""

    def __init__(self, lm: LanguageModel, cfg: ConsolidationConfig, seed: int = 0):
        self.lm, self.cfg = lm, cfg
        self.device = lm.device
        self.precision = choose_autocast(cfg.autocast, self.device)
        self.full = cfg.update == "full"
        if any("lora_" in name for name, _ in lm.model.named_parameters()):
            raise OelError("the loaded model still carries a LoRA adapter; merge or drop it before a new one")
        self.base_model = lm.model
        self.frozen_teacher = None  # full fine-tuning: a frozen copy of the round's starting weights
        if self.full:
            self.peft = lm.model  # every weight trains (the name is the trained model's in both modes)
            for p in self.peft.parameters():
                p.requires_grad_(True)
            self.frozen_teacher = self._frozen_copy(lm.model)
        else:
            self.peft = self._wrap_lora(lm, cfg, seed)
        lm.use_weights(self.peft)
        self._scorer = self.peft  # the model the scoring passes run: the student, or the teacher inside teacher()
        if self._checkpointing():
            self.peft.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if not self.full:
                self.peft.enable_input_require_grads()
        self.params = [p for p in self.peft.parameters() if p.requires_grad]
        # after get_peft_model: the frozen base layers are the ones to hold in bf16
        self.frozen = (FrozenLinearsInDtype(self.peft, torch.bfloat16)
                       if self.precision.choice == "bf16" and not self.full else None)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, betas=(0.9, 0.999),
                                           weight_decay=cfg.weight_decay)

    def _wrap_lora(self, lm: LanguageModel, cfg: ConsolidationConfig, seed: int):
        from peft import LoraConfig, get_peft_model

        present = {name.rsplit(".", 1)[-1] for name, _ in lm.model.named_modules()}
        targets = [m for m in cfg.target_modules if m in present]
        if not targets:
            raise OelError(f"none of the LoRA target modules {list(cfg.target_modules)} exist in {lm.name}")
        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=targets, bias="none", task_type="CAUSAL_LM")
        # A seeded LoRA initialisation: runs are reproducible and a crash during step 0 resumes
        # from the same start. A forked RNG leaves everyone else's random streams alone.
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return get_peft_model(lm.model, lora)

    def _frozen_copy(self, model):
        """The round's starting weights for the teacher while every weight trains: a copy that
        never changes, in bf16 where the scoring passes run in bf16 anyway (half the memory)."""
        import copy

        teacher = copy.deepcopy(model)
        if self.precision.choice == "bf16":
            teacher.to(torch.bfloat16)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    # -- switches -------------------------------------------------------------------------------

    def _checkpointing(self) -> bool:
        return self.cfg.gradient_checkpointing == "on" or (
            self.cfg.gradient_checkpointing == "auto" and self.device.type == "cuda")

    def _autocast(self):
        if self.precision.choice != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    @contextlib.contextmanager
    def _scoring_precision(self):
        """The teacher's and student's passes: autocast, with the frozen weights' bf16 copy."""
        with self._autocast(), (self.frozen.active() if self.frozen else contextlib.nullcontext()):
            yield

    @contextlib.contextmanager
    def teacher(self):
        """The round's starting model for the scoring passes: the adapter switched off (or, full
        fine-tuning, the frozen copy), in eval mode (it has no dropout of its own, and
        checkpointed layers in training mode would drop a prefix cache)."""
        if self.full:
            self._scorer = self.frozen_teacher
            try:
                yield
            finally:
                self._scorer = self.peft
            return
        was_training = self.peft.training
        self.peft.eval()
        try:
            with self.peft.disable_adapter():
                yield
        finally:
            self.peft.train(was_training)

    @contextlib.contextmanager
    def teacher_sampling(self):
        """The teacher writing responses (the off-policy baseline): generation runs what `lm` holds."""
        if not self.full:
            with self.teacher():
                yield
            return
        self.lm.use_weights(self.frozen_teacher)
        try:
            yield
        finally:
            self.lm.use_weights(self.peft)

    # -- the step -------------------------------------------------------------------------------

    def sample(self, prefixes: list[Prefix], as_teacher: bool = False, should_stop=None) -> list[list[int]]:
        """One response per prefix (token ids up to and including the end token), generated in
        batches of at most the model's batch size (a step may hold hundreds of prefixes)."""
        cfg = self.cfg
        sampling = SamplingConfig(temperature=cfg.temperature, top_p=cfg.top_p, top_k=0, max_new_tokens=cfg.max_new_tokens)
        prompts = [insert_experience(p.prompt, p.experience) if as_teacher else p.prompt for p in prefixes]
        # one stream per prefix: a response does not depend on how prefixes are batched
        generators = [torch.Generator(device=self.device).manual_seed(p.sampling_seed) for p in prefixes]
        self.lm.generator.reset_cache()  # the weights changed since the last step
        context = self.teacher_sampling() if as_teacher else contextlib.nullcontext()
        size = max(1, self.lm.config.batch_size)
        responses: list[list[int]] = []
        with context, self._autocast():
            for start in range(0, len(prompts), size):
                if should_stop is not None and should_stop():
                    break
                end = start + size
                outs = self.lm.generate(prompts[start:end], sampling, keys=[p.key for p in prefixes[start:end]],
                                        generator=generators[start:end])
                responses.extend(o.token_ids for o in outs)
        self.lm.generator.reset_cache()
        return responses

    def given_responses(self, prefixes: list[Prefix]) -> list[list[int]] | None:
        """The answers the teacher gave in its own games (the off-policy baseline), as token ids
        cut to the response budget, the end-of-turn token after an answer that ended; None when
        a prefix carries none (they are sampled then)."""
        if not prefixes or any(p.response is None for p in prefixes):
            return None
        tokenizer, cut = self.lm.tokenizer, self.cfg.max_new_tokens
        vocab = tokenizer.get_vocab()
        end = vocab["<|im_end|>"] if "<|im_end|>" in vocab else (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.lm.eos_token_ids()[0])
        out = []
        for p in prefixes:
            ids = tokenizer(p.response, add_special_tokens=False)["input_ids"]
            out.append(ids[:cut] if len(ids) >= cut or not p.response_ended else ids + [end])
        return out

    def build(self, prefixes: list[Prefix], responses: list[list[int]]) -> list[Scored]:
        out = []
        for p, resp in zip(prefixes, responses):
            resp = resp or [self.lm.eos_token_ids()[0]]
            student = self.lm.encode_chat(p.prompt) + resp
            teacher = self.lm.encode_chat(insert_experience(p.prompt, p.experience)) + resp
            out.append(Scored(student, teacher, len(resp), p.experience))
        return out

    def response_logits(self, sequences: list[list[int]], response_lens: list[int],
                        prefix: SharedPrefix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting each response token, [B, R, V], and the response mask [B, R]."""
        return response_logits(self._scorer, sequences, response_lens, self.lm.generator.pad_id, self.device, prefix)

    def shared_prefix(self, sequences: list[list[int]], response_lens: list[int]) -> SharedPrefix | None:
        """The tokens all `sequences` start with, run once (None when too few to be worth it).
        Not under gradient checkpointing with gradients on: checkpointed layers drop a cache."""
        n = shared_length(sequences, response_lens) if full_attention_only(self.peft.config) else 0
        if n == 0 or (torch.is_grad_enabled() and self.peft.training and self._checkpointing()):
            return None
        return SharedPrefix.run(self._scorer, sequences[0][:n], self.device)

    def pair_logits(self, batch: list[Scored], teacher_prefix: SharedPrefix | None = None,
                    student_prefix: SharedPrefix | None = None, precision=contextlib.nullcontext):
        """The teacher's logits (no gradient), the student's and the response mask for `batch`."""
        lens = [s.response_len for s in batch]
        with torch.no_grad(), self.teacher(), precision():
            teacher_logits, _ = self.response_logits([s.teacher_ids for s in batch], lens, teacher_prefix)
        with precision():
            student_logits, mask = self.response_logits([s.student_ids for s in batch], lens, student_prefix)
        return teacher_logits, student_logits, mask

    def loss_on(self, batch: list[Scored], teacher_prefix: SharedPrefix | None = None,
                student_prefix: SharedPrefix | None = None):
        """Loss (token mean over the batch) and stats; gradients flow only into the student."""
        teacher_logits, student_logits, mask = self.pair_logits(batch, teacher_prefix, student_prefix,
                                                                self._scoring_precision)
        cfg = self.cfg
        if cfg.loss == "topk":
            return topk_reverse_kl(student_logits, teacher_logits, mask, cfg.top_k, cfg.temperature, cfg.renormalize)
        if cfg.loss == "full":
            return full_reverse_kl(student_logits, teacher_logits, mask, cfg.temperature)
        return topk_forward_kl(student_logits, teacher_logits, mask, cfg.top_k, cfg.temperature)

    @staticmethod
    def _by_context(scored: list[Scored]) -> dict[str, list[int]]:
        """Row indices per teacher context (its rows share that prefix), in order of appearance."""
        contexts: dict[str, list[int]] = {}
        for i, s in enumerate(scored):
            contexts.setdefault(s.context, []).append(i)
        return contexts

    def micro_batches(self, scored: list[Scored]) -> list[list[int]]:
        """Row indices in micro-batches, each of one teacher context, longest first inside a
        context (less padding)."""
        size, out = self.cfg.micro_batch, []
        for rows in self._by_context(scored).values():
            rows = sorted(rows, key=lambda i: -len(scored[i].student_ids))
            out += [rows[start:start + size] for start in range(0, len(rows), size)]
        return out

    def shared_prefixes(self, scored: list[Scored], autocast: bool = True) -> tuple[dict, SharedPrefix | None]:
        """The teacher's shared prefix per context and the student's for all rows (each run once)."""
        precision = self._scoring_precision if autocast else contextlib.nullcontext
        teacher = {}
        for context, rows in self._by_context(scored).items():
            with torch.no_grad(), self.teacher(), precision():
                teacher[context] = self.shared_prefix([scored[i].teacher_ids for i in rows],
                                                      [scored[i].response_len for i in rows])
        with precision():
            student = self.shared_prefix([s.student_ids for s in scored], [s.response_len for s in scored])
        return teacher, student

    def accumulate_gradients(self, scored: list[Scored]) -> dict:
        """The forward and backward passes of a step, micro-batched; returns the token-weighted
        loss stats. Gradients add up in the LoRA parameters (the caller zeroes and steps)."""
        total_tokens = sum(s.response_len for s in scored)
        sums = {"loss": 0.0, "reverse_kl": 0.0, "topk_mass": 0.0}
        teacher_prefixes, student_prefix = self.shared_prefixes(scored)
        for rows in self.micro_batches(scored):
            chunk = [scored[i] for i in rows]
            weight = sum(s.response_len for s in chunk) / total_tokens
            loss, stats = self.loss_on(chunk, teacher_prefixes[chunk[0].context], student_prefix)
            (loss * weight).backward()
            for k in sums:
                sums[k] += stats[k] * weight
        if student_prefix is not None:
            student_prefix.backward()
        return sums

    def step(self, prefixes: list[Prefix], should_stop=None) -> dict:
        """Sample, score, and take one optimizer step over all prefixes (micro-batched)."""
        started = time.perf_counter()
        self.peft.eval()  # sampling: no dropout
        responses = self.given_responses(prefixes) or self.sample(prefixes, as_teacher=self.cfg.loss == "offpolicy",
                                                                   should_stop=should_stop)
        sampled = time.perf_counter()
        if should_stop is not None and should_stop():
            return {}
        scored = self.build(prefixes, responses)
        total_tokens = sum(s.response_len for s in scored)
        self.peft.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums = self.accumulate_gradients(scored)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        skipped = not math.isfinite(grad_norm)
        if skipped:  # as the reference: no step on a NaN/inf gradient, so the adapter stays finite
            log.warning("consolidation: non-finite gradient norm (%s); optimizer step skipped", grad_norm)
        else:
            self.optimizer.step()
            self.lm.weights_changed()
        self.optimizer.zero_grad(set_to_none=True)
        self.peft.eval()
        done = time.perf_counter()
        finite = lambda v: round(v, 6) if math.isfinite(v) else None
        return {
            **{k: finite(v) for k, v in sums.items()},
            "grad_norm": finite(grad_norm),
            "skipped": skipped,
            "prefixes": len(prefixes),
            "mean_response_tokens": round(total_tokens / max(1, len(scored)), 2),
            "sample_seconds": round(sampled - started, 2),
            "train_seconds": round(done - sampled, 2),
            "seconds": round(done - started, 2),
            "peak_memory_mb": round(peak_memory_mb(self.device), 1),
        }

    @torch.no_grad()
    def evaluate_kl(self, prefixes: list[Prefix], responses: list[list[int]]) -> float:
        """Full reverse KL(student || teacher) on fixed responses (a held-out learning signal)."""
        scored = self.build(prefixes, responses)
        total, tokens = 0.0, 0
        self.peft.eval()
        teacher_prefixes, student_prefix = self.shared_prefixes(scored, autocast=False)
        for rows in self.micro_batches(scored):
            chunk = [scored[i] for i in rows]
            t_logits, s_logits, mask = self.pair_logits(chunk, teacher_prefixes[chunk[0].context], student_prefix)
            _, stats = full_reverse_kl(s_logits, t_logits, mask, self.cfg.temperature)
            n = int(mask.sum())
            total += stats["reverse_kl"] * n
            tokens += n
        return total / max(1, tokens)

    # -- saving -----------------------------------------------------------------------------------

    def save_adapter(self, folder) -> None:
        """The round's update: the adapter, or (full fine-tuning) the whole model with its
        tokenizer, a folder any Hugging Face loader (and `--model`) takes."""
        self.peft.save_pretrained(str(folder))
        if self.full:
            self.lm.tokenizer.save_pretrained(str(folder))

    def state(self) -> dict:
        if self.full:
            return {"model": self.peft.state_dict(), "optimizer": self.optimizer.state_dict()}
        from peft import get_peft_model_state_dict

        return {"adapter": get_peft_model_state_dict(self.peft), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        if self.full:
            if "model" not in state:
                raise OelError("the checkpoint holds a LoRA adapter, not full weights: the run's update setting changed")
            self.peft.load_state_dict(state["model"])
        else:
            from peft import set_peft_model_state_dict

            if "adapter" not in state:
                raise OelError("the checkpoint holds full weights, not a LoRA adapter: the run's update setting changed")
            set_peft_model_state_dict(self.peft, state["adapter"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lm.weights_changed()

    def merge(self) -> None:
        """The trained weights become the next round's policy and teacher (the adapter folded in)."""
        if self.full:
            self._finish_full()
            return
        self.lm.use_weights(self.peft.merge_and_unload())

    def detach(self) -> None:
        """Drop what this round trained: the adapter is removed unmerged; after full fine-tuning
        the weights changed in place, so they are marked as no round's (the next stage reloads)."""
        if self.full:
            self._finish_full()
            self.lm.merged = ("changed by a stopped round", 1)
            return
        if any("lora_" in name for name, _ in self.lm.model.named_parameters()):
            self.lm.use_weights(self.peft.unload())

    def _finish_full(self) -> None:
        for p in self.peft.parameters():
            p.requires_grad_(False)
        if self._checkpointing():
            self.peft.gradient_checkpointing_disable()
        self.frozen_teacher = None
        self.lm.use_weights(self.peft)

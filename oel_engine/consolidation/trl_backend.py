"""Consolidation through TRL's SDFTTrainer (`--backend trl`): the hand-off to a multi-GPU trainer.

The same round, the same data (the run's `prompt` + `privileged_context` rows) and the same
settings as our Distiller: top-k reverse KL on the student's top-k (`distillation_alpha=1`,
renormalised on that support, no tail bucket: tests/unit/test_trl_parity.py shows it equals our
`renormalize=True`), the teacher is the round's starting model (TRL's `base` teacher: our LoRA
adapter switched off), the experience goes where our prompts put it (our own teacher-prompt
builder replaces TRL's template), prompts are never cut. LoRA rank, alpha, targets, seeded
initialisation and learning rate come from the run's config, so the adapter is ours in all but
who stepped it. Launched under `accelerate launch`, TRL spreads the steps over the processes.

What differs: TRL trains all T steps in one call, so a stopped TRL consolidation restarts the
stage from step 0 (our backend resumes from its last step). TRL is the optional `[trl]` extra.
"""

from __future__ import annotations

import importlib
import math
import tempfile
import time
from typing import Callable

from ..config import ConsolidationConfig
from ..errors import OelError
from ..play.prompts import insert_experience
from .distributed import world_size
from .trainer import Distiller, peak_memory_mb


def require_trl():
    try:
        importlib.import_module("trl.experimental.sdft")
    except ImportError as error:
        raise OelError(f"the TRL backend needs TRL: pip install -e '.[trl]' ({error})") from None


def teacher_messages(prompt: list[dict], privileged_context) -> list[dict]:
    """What our teacher reads: the student's messages with the experience block inserted."""
    return insert_experience(prompt, privileged_context if isinstance(privileged_context, str) else str(privileged_context))


def rows_per_step(rows: int, steps: int) -> int:
    """TRL takes a fixed batch per optimizer step: the round's rows spread evenly over T steps."""
    return max(1, math.ceil(rows / max(1, steps)))


class TrlDistiller(Distiller):
    """Our Distiller's adapter, optimizer settings and lifecycle (merge / detach), stepped by TRL."""

    def __init__(self, lm, cfg: ConsolidationConfig, seed: int = 0):
        require_trl()
        if cfg.update != "lora":
            raise OelError("the TRL backend trains a LoRA adapter (its teacher is the base with the adapter off); "
                           "full fine-tuning runs with --backend ours, or set consolidation.update=lora")
        super().__init__(lm, cfg, seed=seed)
        self.frozen = None  # TRL runs its own passes (bf16 mixed precision where measured faster)
        self.seed = seed

    def sdft_config(self, rows: int, output_dir: str = "trl-scratch"):
        from trl.experimental.sdft import SDFTConfig

        c = self.cfg
        per_step = rows_per_step(rows, c.steps)
        per_device = max(1, min(c.micro_batch, per_step))
        accumulate = max(1, math.ceil(per_step / (per_device * world_size())))
        cuda = self.device.type == "cuda"
        return SDFTConfig(
            output_dir=output_dir, max_steps=c.steps,
            per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulate, num_generations=1,
            shuffle_dataset=False,  # our step order: step s trains on step s's games
            max_prompt_length=None,  # never cut a teacher prompt (the experience is in it)
            max_completion_length=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, top_k=0,
            distillation_mode="topk_logits", distillation_topk=c.top_k, distillation_alpha=1.0,
            distillation_add_tail=False, distillation_is_clip=None, teacher_model_kind="base",
            learning_rate=c.learning_rate, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=c.weight_decay, max_grad_norm=c.grad_clip, adam_beta1=0.9, adam_beta2=0.999,
            use_cpu=not cuda, bf16=self.precision.choice == "bf16",
            gradient_checkpointing=self._checkpointing(), report_to=[], save_strategy="no", logging_steps=1,
            disable_tqdm=True, seed=self.seed, dataloader_num_workers=0,
            ddp_find_unused_parameters=False,  # every LoRA weight takes part in every pass
            chat_template_kwargs={"enable_thinking": self.lm.config.thinking},
        )

    def trainer(self, rows: list[dict], callbacks=(), output_dir: str = "trl-scratch"):
        """An SDFTTrainer over `rows` (the run's consolidation data, in step order)."""
        import logging

        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback
        from trl.experimental.sdft import SDFTTrainer
        from trl.experimental.sdft.sdft_trainer import (
            DemonstrationTeacherContextBuilder,
        )

        class OurTeacherPrompt(DemonstrationTeacherContextBuilder):
            def _compose_teacher_prompt(self, prompt, privileged_context):
                return teacher_messages(prompt, privileged_context)

        if not rows:
            raise OelError("no consolidation data for the TRL backend: the round has no deploy games")
        tokenizer = self.lm.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        dataset = Dataset.from_list([{"prompt": r["prompt"], "privileged_context": r["privileged_context"]}
                                     for r in sorted(rows, key=lambda r: r.get("step", 0))])
        logging.getLogger("trl").setLevel(logging.ERROR)  # its "pre-wrapped PEFT model" notice: wanted here
        trainer = SDFTTrainer(model=self.peft, args=self.sdft_config(len(rows), output_dir), train_dataset=dataset,
                              processing_class=tokenizer, callbacks=list(callbacks))
        trainer.teacher_context_builder = OurTeacherPrompt(trainer)
        trainer.remove_callback(PrinterCallback)  # progress goes through our events, not print()
        return trainer

    def train(self, rows: list[dict], on_step: Callable[[dict], None], should_stop: Callable[[], bool]) -> bool:
        """All T steps; `on_step(metrics)` after each (our ConsolidateStep fields). False if stopped."""
        from transformers import TrainerCallback

        distiller = self
        per_step = rows_per_step(len(rows), self.cfg.steps)
        if world_size() > 1:  # one process alone leaving the lockstep would hang the others
            should_stop = lambda: False  # noqa: E731

        class Progress(TrainerCallback):
            stopped = False

            def on_step_begin(self, args, state, control, **kwargs):
                self.started = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                logs = logs or {}
                if "loss" not in logs:
                    return
                loss = float(logs["loss"])
                on_step({
                    "step": state.global_step - 1, "prefixes": per_step,
                    "loss": round(loss, 6) if math.isfinite(loss) else None,
                    "reverse_kl": _rounded(logs.get("self_distillation/distillation_loss", loss)),
                    "grad_norm": _rounded(logs.get("grad_norm")),
                    "mean_response_tokens": round(float(logs.get("completions/mean_length", 0.0)), 2),
                    "seconds": round(time.perf_counter() - getattr(self, "started", time.perf_counter()), 2),
                    "peak_memory_mb": round(peak_memory_mb(distiller.device), 1),
                })
                self.on_step_end(args, state, control)  # the trainer logs after on_step_end: look again

            def on_step_end(self, args, state, control, **kwargs):
                distiller.lm.weights_changed()
                if should_stop():
                    self.stopped = control.should_training_stop = True

        progress = Progress()
        with tempfile.TemporaryDirectory(prefix="oel-trl-") as scratch:  # TRL's output_dir: nothing kept
            self.trainer(rows, [progress], scratch).train()
        self.peft.eval()
        self.lm.weights_changed()
        return not progress.stopped


def _rounded(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None

"""Thinking follows the run's settings in every stage, except the instruction probe (always off,
as the reference runs IFEval) and the move probe (it reads where the answer starts, after an empty
thought); the in-context evaluation reads every one of the K experiences."""

import shutil
from contextlib import contextmanager
from dataclasses import replace

from transformers import AutoTokenizer

from oel_engine.evaluation.instructions.probe import (
    OOD_SAMPLING,
    load_prompts,
    run_probe,
)
from oel_engine.metrics import EvalKind, EvalSample
from oel_engine.model.lm import LanguageModel
from oel_engine.round.evaluate import in_context_samples
from oel_engine.run.store import RunStore
from oel_engine.session import Engine
from tests.support import folder_config

# Qwen3's switch: with thinking off the template writes an empty thinking block for the model
QWEN_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
THOUGHT_OFF = "<think>\n\n</think>"


def record_prompts(monkeypatch) -> list[tuple[str, str, bool]]:
    """Every chat prompt rendered: (last user message, rendered text, whether a probe had switched
    thinking off for it: the instruction probe, and the move probe, which reads where a thinking
    model's answer starts, after an empty thought)."""
    seen, switched = [], []
    render, switch = LanguageModel.chat_text, LanguageModel.thinking

    def recording(self, messages):
        text = render(self, messages)
        seen.append((messages[-1]["content"], text, bool(switched)))
        return text

    @contextmanager
    def switching(self, on):
        switched.append(on)
        try:
            with switch(self, on):
                yield
        finally:
            switched.pop()

    monkeypatch.setattr(LanguageModel, "chat_text", recording)
    monkeypatch.setattr(LanguageModel, "thinking", switching)
    return seen


def test_the_probe_prompts_without_thinking_and_leaves_the_setting_as_it_was(tiny_lm, monkeypatch):
    monkeypatch.setattr(tiny_lm.tokenizer, "chat_template", QWEN_LIKE)  # the session's tokenizer: put back after
    tiny_lm.config = replace(tiny_lm.config, thinking=True)
    seen = record_prompts(monkeypatch)
    assert THOUGHT_OFF not in tiny_lm.chat_text([{"role": "user", "content": "hi"}])  # thinking on: no empty block
    seen.clear()
    run_probe(tiny_lm, [0], replace(OOD_SAMPLING, max_new_tokens=2), load_prompts()[:3])
    assert len(seen) == 3 and all(THOUGHT_OFF in text for _, text, _ in seen)
    assert tiny_lm.config.thinking is True


def test_a_run_with_thinking_prompts_with_it_in_every_stage_but_the_probes(tmp_path, tiny_folder, monkeypatch):
    folder = tmp_path / "qwen-like"  # the tiny model, its tokenizer with Qwen3's switch
    shutil.copytree(tiny_folder, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = QWEN_LIKE
    tokenizer.save_pretrained(folder)
    cfg = folder_config(folder, rounds=1)
    cfg = replace(cfg, model=replace(cfg.model, thinking=True),
                  evaluation=replace(cfg.evaluation, samples=1, ood_samples=1, ood_max_new_tokens=2))
    engine = Engine(tmp_path / "saves")
    engine.load_model(replace(cfg.model, thinking=False))  # loaded by the app without thinking
    seen = record_prompts(monkeypatch)
    with engine.session("thinks", cfg) as s:
        s.run_rounds(1)
    probe = {p.prompt for p in load_prompts()}
    game = [text for content, text, switched_off in seen if not switched_off]
    asked = [text for content, text, switched_off in seen if switched_off and content in probe]
    moves = [text for content, text, switched_off in seen if switched_off and content not in probe]
    assert game and asked and moves
    assert not any(THOUGHT_OFF in text for text in game)  # collection, extraction, consolidation, evaluation
    assert all(THOUGHT_OFF in text for text in asked + moves)
    with RunStore(tmp_path / "saves", "thinks", readonly=True) as store:
        in_context = store.metrics().of(EvalSample, kind=EvalKind.IN_CONTEXT)
    assert sorted(m.experience_run for m in in_context) == list(range(cfg.extraction.runs))


def test_in_context_samples_cover_every_experience_equally():
    assert in_context_samples(3, 10) == 10
    assert in_context_samples(12, 10) == 20
    assert in_context_samples(4, 2) == 4
    assert in_context_samples(3, 1) == 3 and in_context_samples(3, 0) == 3

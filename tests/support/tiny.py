"""A tiny tokenizer and causal LM built in memory (no downloads), for the tests and the benches
that must run anywhere (bench/gpu_round.py builds its models' tokenizer here too)."""

from __future__ import annotations

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "You are an agent playing a grid game. What action do you take? [up] [down] [left] [right]",
    "Current Board: +-----+-----+ | P | H | G | You moved right to position (0, 1).",
    "Congratulations! You reached the goal! You fell into a hole! Invalid action format.",
    "- EXPERIENCE ITEM: avoid holes, move toward the goal. # _ X O P",
]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


# Qwen3's chat template in short: the thinking switch writes an empty thought when it is off
QWEN3_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
# Qwen2/Qwen3's pre-tokenizer: a letter run takes one leading non-letter with it, so "[left" is one
# piece (and one token once merged), while the letters of "[ left" go with the space
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")
# The bracket merges of Qwen's vocabulary (151,936 ids): "[left" "[right" and "[w" "[a" "[s" "[d"
# are single tokens, "[up" and "[down" are "[" then the word
QWEN_BRACKET_MERGES = ("left", "right", "w", "a", "s", "d")


def build_qwen_like_tokenizer():
    """A byte-level BPE with Qwen's pre-tokenizer, its bracket merges and its chat template (with
    the thinking switch and `<think>` tokens): the moves split as the paper's models split them."""
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # trained without brackets before letters, so the only bracket merges are the ones added below
    words = "\n".join(m for m in ("up", "down", "left", "right", "w", "a", "s", "d") for _ in range(8))
    tok.train_from_iterator([line.replace("[", "[ ") for line in CORPUS] * 20 + [words] * 20, trainer)
    spec = json.loads(tok.to_str())
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    for word in QWEN_BRACKET_MERGES:  # last: every merge inside the word comes first, as in Qwen's ranks
        assert word in vocab, f"the trained vocabulary lacks {word!r}"
        vocab["[" + word] = len(vocab)
        merges.append(["[", word])
    tok = Tokenizer.from_str(json.dumps(spec))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    fast.add_tokens(["<think>", "</think>"])
    fast.chat_template = QWEN3_TEMPLATE
    return fast


def build_tiny_qwen3(vocab_size: int, seed: int = 0, init_range: float = 0.02):
    """A Qwen3-architecture causal LM of the tiny size (q/k norms, head_dim apart from the width)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
        tie_word_embeddings=True, initializer_range=init_range,
    )
    model = Qwen3ForCausalLM(config)
    model.eval()
    return model


def build_tiny_model(vocab_size: int, seed: int = 0, init_range: float = 0.02):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        initializer_range=init_range,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    return model

"""The offline instruction-following probe: each check against hand-made answers, the data file,
and a probe pass on the tiny model."""

import pytest

from oel_engine.errors import OelError
from oel_engine.ood.checks import CHECKS, follows, sentences
from oel_engine.ood.probe import OodPrompt, load_prompts, run_probe, score_answers

# (instruction, kwargs, an answer that follows it, an answer that does not)
CASES = [
    ("length:max_words", {"n": 5}, "Four words right here.", "This answer has far too many words in it."),
    ("length:min_words", {"n": 5}, "This one has five words.", "Too short."),
    ("length:max_sentences", {"n": 2}, "One. Two!", "One. Two. Three?"),
    ("length:paragraphs", {"n": 2}, "First part.\n\nSecond part.", "Only one paragraph here."),
    ("keywords:include", {"keywords": ["river", "lantern"]}, "A lantern by the river.", "A lantern by the sea."),
    ("keywords:forbidden", {"forbidden": ["very", "good"]}, "A fine day, goodness me.", "A very fine day."),
    ("keywords:frequency", {"keyword": "honey", "n": 2}, "Honey here, honey there.", "Honey only once."),
    ("format:bullets", {"n": 3}, "Tips:\n* one\n* two\n- three", "Tips:\n* one\n* two"),
    ("case:lowercase", {}, "all small letters here.", "Not all small."),
    ("case:uppercase", {}, "ALL CAPITALS, 100%.", "ALMOST ALL Capitals."),
    ("punctuation:no_comma", {}, "No commas at all.", "Yes, a comma."),
    ("format:json", {}, '```json\n{"a": 1}\n```', "a: 1"),
    ("format:title", {}, "<<A Walk>>\nWe walked.", "A Walk\nWe walked."),
    ("end:phrase", {"phrase": "See you soon."}, "Bye now. See you soon.  ", "See you soon. Bye."),
    ("format:quoted", {}, '"All of it quoted."', 'Only "part" quoted.'),
    ("format:postscript", {"marker": "P.S."}, "Hello.\n\nP.S. Bring tea.", "Hello. Bring tea."),
    ("format:sections", {"n": 2, "word": "SECTION"}, "SECTION 1\nA.\nSECTION 2\nB.", "SECTION 1\nA."),
]


@pytest.mark.parametrize("instruction,kwargs,good,bad", CASES, ids=[c[0] for c in CASES])
def test_each_check_accepts_a_following_answer_and_rejects_another(instruction, kwargs, good, bad):
    assert follows(instruction, good, kwargs)
    assert not follows(instruction, bad, kwargs)


def test_every_check_has_hand_made_cases():
    assert {c[0] for c in CASES} == set(CHECKS)


def test_edge_cases_of_the_checks():
    assert sentences("") == 0 and sentences("No end mark") == 1 and sentences("Dr. Who? Yes.") == 3
    assert not follows("case:lowercase", "   ", {})  # an empty answer follows nothing
    assert not follows("format:json", "42", {})  # a bare number is not a JSON answer
    assert follows("format:json", '[1, 2]', {})


def test_the_shipped_prompts_are_valid_and_cover_every_check():
    prompts = load_prompts()
    assert len(prompts) >= 100 and len({p.key for p in prompts}) == len(prompts)
    assert {i for p in prompts for i, _ in p.instructions} == set(CHECKS)
    for p in prompts:  # arguments match the check's signature
        for i, kwargs in p.instructions:
            follows(i, "some answer", kwargs)


def test_a_malformed_prompt_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"key": 1, "prompt": "x", "instructions": [{"id": "format:rhyme"}]}\n')
    with pytest.raises(OelError, match="line 1 has unknown"):
        load_prompts(bad)
    bad.write_text('{"key": 1, "prompt": "x"\n')
    with pytest.raises(OelError, match="line 1 is not a probe prompt"):
        load_prompts(bad)


def test_prompt_level_strict_accuracy():
    prompts = [OodPrompt(0, "p", (("case:lowercase", {}), ("punctuation:no_comma", {}))),
               OodPrompt(1, "q", (("format:title", {}),))]
    score = score_answers(prompts, ["all lowercase, but a comma", "<<T>> done"], seed=0, tokens=[5, 3])
    assert score.per_prompt == [False, True] and score.accuracy == 0.5
    assert score.instruction_accuracy == pytest.approx(2 / 3) and score.mean_response_tokens == 4


def test_the_probe_on_the_tiny_model_is_reproducible_per_seed(tiny_lm):
    prompts = load_prompts()[:5]
    from oel_engine.config import SamplingConfig

    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=8)
    seen = []
    a = run_probe(tiny_lm, [0, 1], sampling, prompts, on_batch=lambda done, total: seen.append((done, total)))
    b = run_probe(tiny_lm, [0], sampling, prompts)
    assert [s.prompts for s in a] == [5, 5] and all(0 <= s.accuracy <= 1 for s in a)
    assert a[0].per_prompt == b[0].per_prompt and a[0].mean_response_tokens == b[0].mean_response_tokens
    assert seen[-1][0] == seen[-1][1] and 0 < a[0].mean_response_tokens <= 8


def test_oel_ood_on_a_model_folder(tiny_folder):
    import json

    from .test_cli_loop import oel

    res = oel("ood", "--model", str(tiny_folder), "--samples", "2", "--max-new-tokens", "4", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["prompts"] >= 100 and row["samples"] == 2 and len(row["per_seed"]) == 2
    assert 0 <= row["accuracy"] <= 1 and 0 < row["mean_response_tokens"] <= 4
    bad = oel("ood", "--model", "no/such-model-here", "--samples", "1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_round_records_the_probe_for_base_and_consolidated(tmp_path, tiny_tokenizer):
    from dataclasses import replace

    from oel_engine.metrics import MetricsLog, OodSample
    from oel_engine.fileio import read_jsonl

    from .test_ablations import run_rounds
    from .test_loop import tiny_config

    base = tiny_config()
    config = replace(base, evaluation=replace(base.evaluation, ood_samples=2, ood_max_new_tokens=3))
    run_rounds(tmp_path, "r", tiny_tokenizer, config)
    log = MetricsLog.from_dicts(read_jsonl(tmp_path / "r" / "metrics.jsonl")[0])
    records = [(o.kind, o.sample) for o in log.of(OodSample, round=0)]
    assert sorted(records) == [("base", 0), ("base", 1), ("consolidated", 0), ("consolidated", 1)]
    assert all(o.prompts >= 100 and 0 < o.mean_response_tokens <= 3 for o in log.of(OodSample))

"""The offline instruction-following probe: each check against hand-made answers, the data file,
and a probe pass on the tiny model."""

import json

import pytest

from oel_engine.errors import OelError
from oel_engine.evaluation.instructions.checks import CHECKS, IFEVAL, follows, sentences
from oel_engine.evaluation.instructions.probe import (
    OodPrompt,
    load_prompts,
    run_probe,
    score_answers,
)

# (instruction, kwargs, an answer that follows it, an answer that does not)
CASES = [
    ("length:max_words", {"n": 5}, "Four words right here.", "This answer has far too many words in it."),
    ("length:min_words", {"n": 5}, "This one has five words.", "Too short."),
    ("length:max_sentences", {"n": 2}, "One. Two!", "One. Two. Three?"),
    ("length:paragraphs", {"n": 2}, "First part.\n\nSecond part.", "Only one paragraph here."),
    ("keywords:include", {"keywords": ["river", "lantern"]}, "A lantern by the river.", "A lantern by the sea."),
    ("keywords:forbidden", {"forbidden": ["very", "good"]}, "A fine day, goodness me.", "A very fine day."),
    ("keywords:min_count", {"keyword": "honey", "n": 2}, "Honey here, honey there.", "Honey only once."),
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
    assert sentences("Wait... what now?") == 1 and sentences("J. R. Tolkien wrote. Yes.") == 2  # as Punkt
    assert follows("format:json", "42", {}) and follows("format:json", '```JSON{"a": 1}```', {})  # any JSON value
    assert follows("format:json", '[1, 2]', {}) and not follows("format:json", '{"a": 1} and more', {})


@pytest.mark.parametrize("instruction", sorted(IFEVAL))
def test_an_empty_or_blank_answer_follows_nothing(instruction):
    kwargs = {"num_words": 5, "num_sentences": 5, "relation": "less than", "num_paragraphs": 1, "keywords": ["x"],
              "keyword": "x", "frequency": 1, "forbidden_words": ["x"], "num_bullets": 1, "end_phrase": "x",
              "postscript_marker": "P.S.", "section_spliter": "SECTION", "num_sections": 1}
    import inspect

    takes = set(inspect.signature(IFEVAL[instruction]).parameters) - {"response"}
    for blank in ("", "  \n\t"):
        assert not follows(instruction, blank, {k: v for k, v in kwargs.items() if k in takes})


def test_ifeval_ids_judge_as_ifeval_does():
    """Behaviours read from IFEval's instructions.py that our probe's older checks did not share."""
    assert follows("length_constraints:number_words", "don't stop", {"num_words": 3, "relation": "at least"})  # \w+ runs
    assert follows("keywords:existence", "A riverbank.", {"keywords": ["river"]})  # anywhere, not a whole word
    assert follows("keywords:forbidden_words", "goodness", {"forbidden_words": ["good"]})  # whole words only
    assert follows("keywords:frequency", "Honeycomb and honey.", {"keyword": "honey", "frequency": 2, "relation": "at least"})
    assert follows("detectable_format:multiple_sections", "SECTION 1 a SECTION 2 b SECTION 3 c",
                   {"section_spliter": "SECTION", "num_sections": 2})  # at least as many as asked
    assert follows("startend:end_checker", '"Bye. SEE YOU SOON."', {"end_phrase": "See you soon."})
    assert follows("detectable_content:postscript", "Hi.\np.s. later", {"postscript_marker": "P.S."})
    assert not follows("detectable_format:title", "<< >> empty", {})
    assert follows("length_constraints:number_paragraphs", "A\n***\nB", {"num_paragraphs": 2})
    assert not follows("length_constraints:number_paragraphs", "A\n***\n***\nB", {"num_paragraphs": 2})
    assert follows("detectable_format:number_bullet_lists", "-5 degrees\n* two", {"num_bullets": 2})


def test_answers_in_a_file_are_scored_one_verdict_line_each(tmp_path):
    from typer.testing import CliRunner

    from oel_engine.cli.main import app

    rows = [{"instructions": [{"id": "keywords:existence", "kwargs": {"keywords": ["tea"]}},
                              {"id": "punctuation:no_comma", "kwargs": {}}], "response": "Tea please"},
            {"instructions": [{"id": "case:lowercase"}], "response": "Not lower"},
            "not json",
            {"instructions": [{"id": "format:rhyme"}, {"id": "length_constraints:number_words",
                                                      "kwargs": {"num_words": 3}}], "response": "a b"}]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(app, ["ood", "--score", str(answers), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3, 4]
    assert [v["followed"] for v in lines[0]["instructions"]] == [True, True] and lines[0]["followed_all"] is True
    assert lines[1]["followed_all"] is False
    assert "not an answer line" in lines[2]["error"]
    assert [v["followed"] for v in lines[3]["instructions"]] == [None, None] and lines[3]["followed_all"] is None
    assert "unknown instruction" in lines[3]["instructions"][0]["error"]
    assert "bad arguments" in lines[3]["instructions"][1]["error"]
    text = " ".join(CliRunner().invoke(app, ["ood", "--score", str(answers)]).stdout.split())  # unwrapped
    assert "4 answer(s); prompt-level strict accuracy 50.0%, instructions followed 66.7%" in text
    assert "not judged: 1 x unknown instruction" in text


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

    from tests.support import oel

    res = oel("ood", "--model", str(tiny_folder), "--samples", "2", "--max-new-tokens", "4", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["prompts"] >= 100 and row["samples"] == 2 and len(row["per_seed"]) == 2
    assert 0 <= row["accuracy"] <= 1 and 0 < row["mean_response_tokens"] <= 4
    bad = oel("ood", "--model", "no/such-model-here", "--samples", "1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_round_records_the_probe_for_base_and_consolidated(tmp_path, tiny_tokenizer):
    from dataclasses import replace

    from oel_engine.fileio import read_jsonl
    from oel_engine.metrics import MetricsLog, OodSample
    from tests.support import run_rounds, tiny_config

    base = tiny_config()
    config = replace(base, evaluation=replace(base.evaluation, ood_samples=2, ood_max_new_tokens=3))
    run_rounds(tmp_path, "r", tiny_tokenizer, config)
    log = MetricsLog.from_dicts(read_jsonl(tmp_path / "r" / "metrics.jsonl")[0])
    records = [(o.kind, o.sample) for o in log.of(OodSample, round=0)]
    assert sorted(records) == [("base", 0), ("base", 1), ("consolidated", 0), ("consolidated", 1)]
    assert all(o.prompts >= 100 and 0 < o.mean_response_tokens <= 3 for o in log.of(OodSample))

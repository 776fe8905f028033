"""Does our instruction probe judge as IFEval does? Edge-case answers, each judged by our checks
(oel_engine/evaluation/instructions/checks.py) and by IFEval's reference checkers (lm-eval's tasks/ifeval, a port of
google-research's instruction_following_eval), with IFEval's strict rule (an empty or whitespace
answer follows nothing). Prints agreement per instruction and writes bench/ifeval_agreement.json.

The reference needs packages the project does not: put them in a venv of their own (this file
imports only our pure-Python checks, no torch):

    python -m venv /tmp/ifeval && /tmp/ifeval/bin/pip install --no-deps lm-eval==0.4.13 \\
        && /tmp/ifeval/bin/pip install nltk langdetect immutabledict typing_extensions numpy \\
           requests pyyaml jinja2 datasets sacrebleu
    /tmp/ifeval/bin/python bench/ifeval_agreement.py

nltk's trained Punkt model (IFEval's sentence counter) downloads from GitHub, which this machine
cannot reach; without it the reference's sentence counts use nltk's untrained Punkt, and the JSON
says which was used. langdetect is seeded so the case checks are reproducible.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oel_engine.evaluation.instructions.checks import IFEVAL, follows  # noqa: E402

OUT = ROOT / "bench" / "ifeval_agreement.json"

W = "length_constraints:number_words"
S = "length_constraints:number_sentences"
P = "length_constraints:number_paragraphs"
# (IFEval id, kwargs, answer): answers chosen at the edges of each check
CASES = [
    *[(W, {"num_words": n, "relation": rel}, text) for n, rel, text in [
        (5, "less than", "Four words right here."), (5, "less than", "Five words are right here."),
        (3, "less than", "don't"), (3, "less than", "don't stop"), (4, "at least", "well-known fact here"),
        (3, "at least", "e-mail me"), (2, "at least", "3.14 pi"), (1, "at least", "...!!!"),
        (2, "less than", "über straße"), (3, "at least", "snake_case_words count"), (1, "at least", "   "),
        (2, "at least", "a\nb"), (10, "less than", "word " * 9), (10, "less than", "word " * 10)]],
    *[(S, {"num_sentences": n, "relation": rel}, text) for n, rel, text in [
        (3, "less than", "One. Two!"), (3, "less than", "One. Two. Three?"), (2, "less than", "No end mark"),
        (3, "less than", "Dr. Who is here. Yes."), (2, "less than", "Pi is 3.14 today."),
        (2, "less than", "Wait... what?"), (2, "at least", "Wait... What now?"), (3, "at least", "A. B. C."), (2, "at least", "Hello!! Bye??"),
        (2, "less than", "Line one\nLine two"), (3, "less than", "He said \"Go.\" She went."),
        (2, "at least", "e.g. this one"), (4, "less than", "Mr. Smith met Mrs. Jones. They talked."),
        (2, "less than", "U.S.A. is big."), (3, "at least", "One.Two.Three.")]],
    *[(P, {"num_paragraphs": n}, text) for n, text in [
        (2, "First.\n***\nSecond."), (2, "First.\n\nSecond."), (2, "***\nFirst.\n***\nSecond.\n***"),
        (3, "A\n***\n\n***\nC"), (1, "Just one."), (2, "A *** B"), (2, "A****B")]],
    *[("keywords:existence", {"keywords": k}, text) for k, text in [
        (["river"], "A riverbank."), (["river"], "The RIVER flows."), (["river", "moon"], "river only"),
        (["ice cream"], "I like ice  cream."), (["art"], "Smart start.")]],
    *[("keywords:frequency", {"keyword": k, "frequency": n, "relation": rel}, text) for k, n, rel, text in [
        ("honey", 2, "at least", "Honey here, honey there."), ("honey", 2, "at least", "Honeycomb and honey."),
        ("honey", 2, "less than", "honey honey"), ("cat", 3, "at least", "cat catalog concatenate"),
        ("sun", 1, "less than", "A Sunny day.")]],
    *[("keywords:forbidden_words", {"forbidden_words": k}, text) for k, text in [
        (["good"], "A fine day, goodness me."), (["good"], "Good day."), (["very"], "Every day."),
        (["don't"], "I don't know."), (["well"], "well-being matters")]],
    *[("detectable_format:number_bullet_lists", {"num_bullets": n}, text) for n, text in [
        (3, "Tips:\n* one\n* two\n- three"), (2, "* one\n** bold heading\n* two"), (2, "- one\n-two"),
        (1, "-5 degrees today"), (2, "  * indented\n\t- tabbed"), (1, "1. numbered"), (2, "*one*\n* two"),
        (1, "No bullets at all.")]],
    *[("change_case:english_lowercase", {}, text) for text in [
        "all small letters here.", "Not all small.", "123 456", "hello 123", "  ", "ünïcode lower only",
        "lowercase with ACRONYM"]],
    *[("change_case:english_capital", {}, text) for text in [
        "ALL CAPITALS, 100%.", "ALMOST ALL Capitals.", "123", "ÉCOLE IS FRENCH", "A"]],
    *[("punctuation:no_comma", {}, text) for text in ["No commas at all.", "Yes, a comma.", "Full-width，comma", "\n"]],
    *[("detectable_format:json_format", {}, text) for text in [
        '```json\n{"a": 1}\n```', "a: 1", "42", '"a string"', "[1, 2]", '```\n{"a": 1}\n```', '```JSON{"a":1}```',
        '{"a": 1} trailing', "null", '  {"nested": {"b": [1, 2]}}  ', "```python\n{}\n```", "NaN"]],
    *[("detectable_format:title", {}, text) for text in [
        "<<A Walk>>\nWe walked.", "A Walk\nWe walked.", "<< >> nothing", "<<a\nb>>", "<<<deep>>>", "x <<t>> y"]],
    *[("startend:end_checker", {"end_phrase": p}, text) for p, text in [
        ("See you soon.", "Bye now. See you soon.  "), ("See you soon.", "See you soon. Bye."),
        ("See you soon.", "bye. SEE YOU SOON."), ("See you soon.", '"Bye. See you soon."'),
        ("Is there anything else I can help with?", "Done. Is there anything else I can help with?\n")]],
    *[("startend:quotation", {}, text) for text in ['"All of it quoted."', 'Only "part" quoted.', '"', '  "x"  ', "'single'"]],
    *[("detectable_content:postscript", {"postscript_marker": m}, text) for m, text in [
        ("P.S.", "Hello.\n\nP.S. Bring tea."), ("P.S.", "Hello. Bring tea."), ("P.S.", "Hello.\np.s. lower"),
        ("P.S.", "Hello. P.S. inline"), ("P.S.", "Hello.\nPS no dots"), ("P.P.S", "Hi.\nP.P.S more"),
        ("P.S.", "Hello.\nP. S. spaced"), ("Note:", "Text.\nnote: here")]],
    *[("detectable_format:multiple_sections", {"section_spliter": w, "num_sections": n}, text) for w, n, text in [
        ("SECTION", 2, "SECTION 1\nA.\nSECTION 2\nB."), ("SECTION", 2, "SECTION 1\nA."),
        ("SECTION", 2, "SECTION 1\nA.\nSECTION 2\nB.\nSECTION 3\nC."), ("Section", 2, "SECTION 1 a SECTION 2 b"),
        ("SECTION", 1, "SECTION1 tight"), ("SECTION", 2, "SECTION X and SECTION Y")]],
]


def reference_checker():
    """IFEval's strict judgement from lm-eval, and which sentence counter it is using."""
    import langdetect
    import nltk
    from lm_eval.tasks.ifeval import instructions_registry, instructions_util

    langdetect.DetectorFactory.seed = 0
    try:
        nltk.data.find("tokenizers/punkt")
        counter = "nltk Punkt, trained English model"
    except LookupError:  # the trained model is not on the package registry
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        instructions_util._get_sentence_tokenizer = lambda: PunktSentenceTokenizer()
        counter = "nltk Punkt, untrained (the English model could not be downloaded here)"

    def judge(iid: str, kwargs: dict, response: str) -> bool:
        instruction = instructions_registry.INSTRUCTION_DICT[iid](iid)
        instruction.build_description(**{k: v for k, v in kwargs.items() if v})
        return bool(response.strip() and instruction.check_following(response))

    return judge, counter


def main() -> None:
    judge, counter = reference_checker()
    per_id: dict[str, list[int]] = {}
    disagreements = []
    for iid, kwargs, response in CASES:
        ours, theirs = follows(iid, response, kwargs), judge(iid, kwargs, response)
        per_id.setdefault(iid, [0, 0])
        per_id[iid][0] += ours == theirs
        per_id[iid][1] += 1
        if ours != theirs:
            disagreements.append({"id": iid, "kwargs": kwargs, "response": response, "ours": ours, "ifeval": theirs})
    agreed = sum(a for a, _ in per_id.values())
    assert set(per_id) == set(IFEVAL), "every instruction we judge has edge cases here"
    result = {"cases": len(CASES), "agreed": agreed, "agreement": round(agreed / len(CASES), 4),
              "per_instruction": {k: f"{a}/{n}" for k, (a, n) in sorted(per_id.items())},
              "disagreements": disagreements, "reference": "lm-eval 0.4.13 tasks/ifeval (strict)",
              "sentence_counter": counter}
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{agreed}/{len(CASES)} edge cases judged as IFEval judges them ({result['agreement']:.1%}); "
          f"reference sentence counter: {counter}")
    for k, v in result["per_instruction"].items():
        print(f"  {k}: {v}")
    for d in disagreements:
        print(f"  differs: {d['id']} {d['kwargs']} {d['response']!r}: ours {d['ours']}, IFEval {d['ifeval']}")


if __name__ == "__main__":
    main()

"""Instruction checks of the IFEval kinds, as small pure functions of the response text.

Each check judges as IFEval's strict evaluation does (lm-eval's `tasks/ifeval/instructions.py`,
a port of google-research's `instruction_following_eval`): an empty or whitespace answer follows
nothing; words are runs of `\\w`; keywords are found case-insensitively anywhere (forbidden words
as whole words); JSON is any JSON value, a Markdown code fence around it removed; sections are
counted by splitting at the section word and a number, at least as many as asked; an end phrase
and a postscript are matched case-insensitively. Deliberately different, and said in the README:
the case checks do not detect the language (IFEval also asks langdetect for English), sentences
are counted by their end marks (IFEval uses nltk's trained Punkt model, whose data is not on the
package registry), and our own `length:paragraphs` counts blank-line paragraphs (IFEval's
`length_constraints:number_paragraphs`, also judged here, counts `***`-separated ones).

The checks are named by IFEval's instruction ids with IFEval's arguments; our probe's shorter ids
(`length:max_words`, ...) are the same checks with simpler arguments.
"""

from __future__ import annotations

import json
import re
from typing import Callable

WORD = re.compile(r"\w+")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
LESS_THAN, AT_LEAST = "less than", "at least"


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> int:
    """Sentence count: runs of . ! ? followed by a space or the end, plus a final unterminated
    one; an ellipsis or a one-letter initial inside the text does not end a sentence (as Punkt
    judges them when it has no trained model)."""
    text = text.strip()
    ends = [m for m in SENTENCE_END.finditer(text) if not _continues(text, m)]
    tail = text[ends[-1].end():] if ends else text
    return len(ends) + (1 if re.search(r"\w", tail) else 0)


def _continues(text: str, end: re.Match) -> bool:
    if not text[end.end():].strip():
        return False
    initial = end.group() == "." and re.search(r"(?:^|\s)[A-Za-z]$", text[:end.start()])
    return end.group().startswith("..") or bool(initial)


def blank_line_paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _compare(count: int, relation: str, n: int) -> bool:
    if relation == LESS_THAN:
        return count < n
    if relation == AT_LEAST:
        return count >= n
    raise ValueError(f"relation must be '{LESS_THAN}' or '{AT_LEAST}', not {relation!r}")


# -- IFEval's instructions, with IFEval's arguments ------------------------------------------------

def number_words(response: str, num_words: int, relation: str) -> bool:
    return _compare(len(words(response)), relation, int(num_words))


def number_sentences(response: str, num_sentences: int, relation: str) -> bool:
    return _compare(sentences(response), relation, int(num_sentences))


def number_paragraphs(response: str, num_paragraphs: int) -> bool:
    """Paragraphs separated by the Markdown divider `***`; an empty one inside breaks the format."""
    parts = re.split(r"\s?\*\*\*\s?", response)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if 0 < i < len(parts) - 1:
                return False
            count -= 1
    return count == int(num_paragraphs)


def keywords_exist(response: str, keywords: list[str]) -> bool:
    return all(re.search(re.escape(k), response, re.IGNORECASE) for k in keywords)


def keyword_frequency(response: str, keyword: str, frequency: int, relation: str) -> bool:
    return _compare(len(re.findall(re.escape(keyword), response, re.IGNORECASE)), relation, int(frequency))


def forbidden_words(response: str, forbidden_words: list[str]) -> bool:
    return not any(re.search(rf"\b{re.escape(w)}\b", response, re.IGNORECASE) for w in forbidden_words)


def bullet_lists(response: str, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", response, re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, re.MULTILINE)
    return len(stars) + len(dashes) == int(num_bullets)


def lowercase(response: str) -> bool:
    return response.islower()


def capitals(response: str) -> bool:
    return response.isupper()


def no_comma(response: str) -> bool:
    return "," not in response


def json_format(response: str) -> bool:
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if text.startswith(fence):
            text = text[len(fence):]
            break
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(response: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


def end_phrase(response: str, end_phrase: str) -> bool:
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(response: str) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def postscript(response: str, postscript_marker: str = "P.S.") -> bool:
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.findall(pattern, response.lower(), re.MULTILINE))


def sections(response: str, section_spliter: str, num_sections: int) -> bool:
    parts = re.split(r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?", response)
    return len(parts) - 1 >= int(num_sections)


IFEVAL: dict[str, Callable[..., bool]] = {
    "length_constraints:number_words": number_words,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "keywords:existence": keywords_exist,
    "keywords:frequency": keyword_frequency,
    "keywords:forbidden_words": forbidden_words,
    "detectable_format:number_bullet_lists": bullet_lists,
    "change_case:english_lowercase": lowercase,
    "change_case:english_capital": capitals,
    "punctuation:no_comma": no_comma,
    "detectable_format:json_format": json_format,
    "detectable_format:title": title,
    "startend:end_checker": end_phrase,
    "startend:quotation": quotation,
    "detectable_content:postscript": postscript,
    "detectable_format:multiple_sections": sections,
}

# -- our probe's ids: the same checks with simpler arguments ---------------------------------------

CHECKS: dict[str, Callable[..., bool]] = {
    "length:max_words": lambda r, n: number_words(r, n, LESS_THAN),
    "length:min_words": lambda r, n: number_words(r, n, AT_LEAST),
    "length:max_sentences": lambda r, n: number_sentences(r, n + 1, LESS_THAN),
    "length:paragraphs": lambda r, n: len(blank_line_paragraphs(r)) == n,  # ours: blank lines, not ***
    "keywords:include": lambda r, keywords: keywords_exist(r, keywords),
    "keywords:forbidden": lambda r, forbidden: forbidden_words(r, forbidden),
    "keywords:min_count": lambda r, keyword, n: keyword_frequency(r, keyword, n, AT_LEAST),
    "format:bullets": lambda r, n: bullet_lists(r, n),
    "case:lowercase": lowercase,
    "case:uppercase": capitals,
    "punctuation:no_comma": no_comma,
    "format:json": json_format,
    "format:title": title,
    "end:phrase": lambda r, phrase: end_phrase(r, phrase),
    "format:quoted": quotation,
    "format:postscript": lambda r, marker="P.S.": postscript(r, marker),
    "format:sections": lambda r, n, word="SECTION": sections(r, word, n),
}
KNOWN = {**CHECKS, **IFEVAL}  # one id in both, punctuation:no_comma, is the same check


def follows(instruction_id: str, response: str, kwargs: dict) -> bool:
    """Strict, as IFEval: an empty or whitespace answer follows nothing. IFEval drops arguments
    that are null, zero or empty, and so does this."""
    if not response.strip():
        return False
    return KNOWN[instruction_id](response, **{k: v for k, v in kwargs.items() if v})

"""Instruction checks of the IFEval kinds, as small pure functions of the response text.

Each check takes the response and the instruction's arguments and returns True when the
instruction is followed. "Strict" as IFEval: the response as written, nothing stripped but the
surrounding whitespace (and, for JSON, a Markdown code fence around it).
"""

from __future__ import annotations

import json
import re
from typing import Callable

WORD = re.compile(r"\b[\w'-]+\b")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
BULLET = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> int:
    """Sentence count: runs of . ! ? followed by a space or the end, plus a final unterminated one."""
    text = text.strip()
    if not text:
        return 0
    ends = len(SENTENCE_END.findall(text))
    return ends + (0 if SENTENCE_END.search(text[-1] + " ") else 1)


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def max_words(response: str, n: int) -> bool:
    return len(words(response)) < n


def min_words(response: str, n: int) -> bool:
    return len(words(response)) >= n


def max_sentences(response: str, n: int) -> bool:
    return 0 < sentences(response) <= n


def paragraph_count(response: str, n: int) -> bool:
    return len(paragraphs(response)) == n


def include_keywords(response: str, keywords: list[str]) -> bool:
    lowered = response.lower()
    return all(re.search(rf"\b{re.escape(k.lower())}\b", lowered) for k in keywords)


def forbidden_words(response: str, forbidden: list[str]) -> bool:
    lowered = response.lower()
    return not any(re.search(rf"\b{re.escape(k.lower())}\b", lowered) for k in forbidden)


def keyword_frequency(response: str, keyword: str, n: int) -> bool:
    return len(re.findall(rf"\b{re.escape(keyword.lower())}\b", response.lower())) >= n


def bullet_count(response: str, n: int) -> bool:
    return len(BULLET.findall(response)) == n


def all_lowercase(response: str) -> bool:
    return bool(response.strip()) and response == response.lower()


def all_uppercase(response: str) -> bool:
    return bool(re.search(r"[A-Za-z]", response)) and response == response.upper()


def no_comma(response: str) -> bool:
    return bool(response.strip()) and "," not in response


def json_format(response: str) -> bool:
    text = response.strip()
    fenced = re.fullmatch(r"```(?:json|JSON)?\s*\n?(.*?)\n?```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return text.startswith(("{", "["))


def title(response: str) -> bool:
    return bool(re.search(r"<<[^<>\n]+>>", response))


def end_phrase(response: str, phrase: str) -> bool:
    return response.strip().endswith(phrase)


def quoted(response: str) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def postscript(response: str, marker: str = "P.S.") -> bool:
    return bool(re.search(rf"^\s*{re.escape(marker)}", response, re.MULTILINE))


def section_count(response: str, n: int, word: str = "SECTION") -> bool:
    return len(re.findall(rf"\b{re.escape(word)}\s+\d+", response)) == n


CHECKS: dict[str, Callable[..., bool]] = {
    "length:max_words": max_words,
    "length:min_words": min_words,
    "length:max_sentences": max_sentences,
    "length:paragraphs": paragraph_count,
    "keywords:include": include_keywords,
    "keywords:forbidden": forbidden_words,
    "keywords:frequency": keyword_frequency,
    "format:bullets": bullet_count,
    "case:lowercase": all_lowercase,
    "case:uppercase": all_uppercase,
    "punctuation:no_comma": no_comma,
    "format:json": json_format,
    "format:title": title,
    "end:phrase": end_phrase,
    "format:quoted": quoted,
    "format:postscript": postscript,
    "format:sections": section_count,
}


def follows(instruction_id: str, response: str, kwargs: dict) -> bool:
    return CHECKS[instruction_id](response, **kwargs)

"""What a field means, and the phrases of a prompt that can fill it. Pure and deterministic.

A field is classified by the words of its name, title and description: a place (``city``,
``location``...), a time (``date``, ``month``, "when"...), a name (``name``, ``variety``,
``author``...), free text (``description``, ``reason``, ``query``...) or anything else. The
prompt yields candidates of each kind: places after "in/at/near/from/to", time expressions
(months, weekdays, seasons, dates, years), proper nouns (capitalized phrases that are neither
times nor sentence openers), quoted phrases and numbers.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "FieldKind",
    "field_kind",
    "field_words",
    "places",
    "proper_nouns",
    "time_phrases",
]

FieldKind = Literal["place", "time", "name", "query", "text", "other"]


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


_KIND_WORDS: tuple[tuple[FieldKind, frozenset[str]], ...] = (
    (
        "place",
        _words(
            "city town location place country region state province destination origin",
            "address area village where venue county locality",
        ),
    ),
    (
        "time",
        _words(
            "date day month when time year season harvest period deadline schedule held",
            "datetime timestamp birthday start end until since",
        ),
    ),
    (
        "query",
        _words("query question search keyword keywords topic subject term terms"),
    ),
    (
        "text",
        _words(
            "description summary reason answer text content explanation details comment notes",
            "message body setup punchline joke story justification rationale response",
        ),
    ),
    (
        "name",
        _words(
            "name person author who variety title company brand product species artist user",
            "username team organization organisation owner customer employee character model",
            "breed label firm",
        ),
    ),
)
_MONTHS = "January February March April May June July August September October November December"
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
_SEASONS = "spring summer autumn fall winter"
_TIME_WORDS = frozenset(f"{_MONTHS} {_DAYS}".lower().split()) | frozenset(_SEASONS.split())
_MONTH = f"(?:{'|'.join(_MONTHS.split())})"
_DAY = f"(?:{'|'.join(_DAYS.split())})"
_ORDINAL = r"(?:first|second|third|fourth|last)"
_TIME = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?Z?)?"
    rf"|(?:the\s+)?{_ORDINAL}\s+{_DAY}\s+of\s+{_MONTH}"
    rf"|(?:(?:early|mid|late|end of|beginning of)[\s-]+)?{_MONTH}"
    rf"(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:\s+\d{{4}})?"
    rf"|{_DAY}|(?:early|mid|late)?[\s-]?(?:{_SEASONS.replace(' ', '|')})"
    rf"|(?:in|since|from|until)\s+(?:1[89]|20)\d{{2}}|tomorrow|today|tonight|yesterday)\b",
    re.IGNORECASE,
)
_CAPITALIZED = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w'’-]*)*")
# Capitalized only because they open a sentence or address the assistant.
_OPENERS = _words(
    "What How Who When Where Why Which Whose Please Use Using Call Can Could Would Will "
    "Should Tell Get Find Give Show Make Let Run Invoke Is Are Do Does Did I I'm It Its It's "
    "This That These Those My The A An And Or But If Then Now Hi Hello Hey Return Answer "
    "Write Respond Reply Compute Calculate Look Search Check Fetch Set Be You Your We Our Yes "
    "No Ok OK Extract List Name Describe Explain Summarize Summarise Translate Add Multiply "
    "Book Send Create Look Each Today Entry Only Members Visitors At In On For From To By "
    "With Here There Given Context Query Question Note Some Also JSON API URL HTTP XML YAML "
    "ID USD EUR"
)
_PLACE_AFTER = re.compile(
    r"\b(?:in|at|near|from|to|for|around|of)\s+((?:the\s+)?[\w'’.-]+(?:\s+[\w'’.-]+){0,3})",
    re.IGNORECASE,
)
_PLACE_STOP = _words(
    "today tomorrow now right please and with on this that the a an is are was be will would "
    "should could what how when weather forecast temperature it its me my your our their next "
    "this week weekend tonight currently like in at for to from by of or but so if then "
    "celsius fahrenheit degrees metric imperial units"
)
_WORD = re.compile(r"[a-z]+")


def field_words(name: str, title: str = "", description: str = "") -> set[str]:
    """The lowercase words of a field's name (snake_case, camelCase), title and description."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", f"{name} {title} {description}")
    return set(_WORD.findall(spaced.lower().replace("_", " ")))


def field_kind(name: str, title: str = "", description: str = "") -> FieldKind:
    """What a string field holds, judged by its name first, then its title and description."""
    for words in (field_words(name), field_words(name, title, description)):
        for kind, vocabulary in _KIND_WORDS:
            if words & vocabulary:
                return kind
    return "other"


def time_phrases(text: str) -> list[str]:
    """Time expressions in order: dates, "late September", "the first Saturday of October"..."""
    out = []
    for match in _TIME.finditer(text):
        phrase = " ".join(match.group(0).split())
        phrase = re.sub(r"^(?:in|since|from|until)\s+", "", phrase, flags=re.IGNORECASE)
        if phrase.lower() in {"may", "march", "fall"} and not _looks_like_month(text, match):
            continue
        out.append(phrase)
    return out


def _looks_like_month(text: str, match: re.Match[str]) -> bool:
    word = match.group(0)
    return word[0].isupper() and match.start() > 0 and text[match.start() - 2] not in ".!?\n"


def _is_time(phrase: str) -> bool:
    return any(w in _TIME_WORDS for w in phrase.lower().split())


def proper_nouns(text: str) -> list[str]:
    """Capitalized phrases that name something: not a time, not only a sentence opener."""
    out = []
    for match in _CAPITALIZED.finditer(text):
        words = match.group(0).split()
        while words and (words[0] in _OPENERS or words[0].lower() in ("of", "de", "the")):
            words.pop(0)
        while words and words[-1].lower() in ("of", "de", "the"):
            words.pop()
        phrase = " ".join(words)
        if phrase and not _is_time(phrase):
            out.append(phrase)
    return out


def places(text: str) -> list[str]:
    """Places named after a preposition ("in new york" -> "New York"), then proper nouns."""
    out = []
    for match in _PLACE_AFTER.finditer(text):
        words = []
        for word in match.group(1).split():
            bare = word.strip(".,;:!?'’\"")
            if bare.lower() in _PLACE_STOP or not bare or bare[0].isdigit():
                break
            words.append(bare)
            if bare != word:  # punctuation ends the place
                break
        else:
            # "Paris, France" / "Austin, TX": a capitalized place, a comma, a capitalized region.
            region = re.match(r",\s*([A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)?)\b", text[match.end(1) :])
            if words and words[-1][0].isupper() and region:
                words[-1] += ","
                words.append(region.group(1))
        if words and words[0].lower() == "the":
            words = words[1:]
        phrase = " ".join(words)
        if not phrase or _is_time(phrase):
            continue
        if phrase.islower():
            if len(words) > 3:
                continue
            phrase = phrase.title()
        out.append(phrase)
    return out

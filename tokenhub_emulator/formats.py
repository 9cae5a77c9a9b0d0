"""Replies in the format a prompt asks for: RAG answers, ReAct steps, selections, JSON programs.

Pure and deterministic; each function takes the request's messages and returns the reply text,
or None when the prompt is not of its kind. `tokenhub_emulator.replies.answer` tries them in
order (see the README's "How the emulator answers" for the contract).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from tokenhub_emulator.meaning import proper_nouns, time_phrases
from tokenhub_emulator.schema_values import PromptValues, generate

__all__ = [
    "best_sentences",
    "condensed_question",
    "rag_answer",
    "react_step",
    "schema_program",
    "selection",
]

Messages = list[dict[str, Any]]
TextOf = Callable[[Any], str]

_STOP = frozenset(
    " ".join(
        (
            "a an the and or but of to in on at by for with from as is are was were be been being",
            "do does did what when where who whom which why how that this these those it its it's",
            "there their they them he she his her you your we our i me my can could would should",
            "will shall may might must has have had not no yes if then than so such into about",
            "over",
            "under again also any all each some more most other only own same too very just please",
            "tell give say answer question query context information below above given following",
            "use using based",
        )
    ).split()
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_DASHES = re.compile(r"^\s*-{5,}\s*$", re.MULTILINE)
_NUMBER = re.compile(r"\d")
_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _sentences(context: str) -> list[tuple[tuple[int, int], str, str]]:
    """Sentences of a context: ((section, paragraph), sentence, the section's heading).

    A heading or a ``file_name:`` line starts a section; a blank line starts a paragraph.
    """
    out: list[tuple[tuple[int, int], str, str]] = []
    section, heading = 0, ""
    for paragraph, block in enumerate(re.split(r"\n\s*\n", context)):
        lines = []
        for raw in block.splitlines():
            line = raw.strip()
            if line.startswith("#") or re.match(r"^(?:file_name|file_path|source)\s*:", line):
                section += 1
                heading = line.lstrip("#").strip() if line.startswith("#") else ""
                continue
            if not line or re.fullmatch(r"[*_].*[*_]", line):
                continue
            lines.append(re.sub(r"^(?:\d+[.)]|[-*•])\s+", "", line))
        text = " ".join(lines)
        out.extend(
            ((section, paragraph), s.strip(), heading)
            for s in _SENTENCE_END.split(text)
            if len(s.strip()) > 2
        )
    return out


def best_sentences(context: str, question: str, limit: int = 3) -> list[str]:
    """The context sentences that best answer ``question``, in their original order.

    Each question term a sentence shares (after light stemming) scores its rarity across the
    context's sentences (inverse document frequency); a sentence holding what the question asks
    for scores one more ("when": a time, "how many/much/long": a number, "who/where": a proper
    noun). The best sentence is kept, then others of its paragraph scoring at least a quarter as
    much, of its section at least half as much, and any scoring nearly as much (85%), up to
    ``limit``.
    """
    sentences = _sentences(context)
    lowered = question.lower()
    asked = _terms(re.sub(r"\bhow (?:many|much|long|old)\b", " ", lowered))
    terms = [_terms(text) for _, text, _ in sentences]
    rarity = {
        t: math.log(1 + len(sentences) / sum(1 for found in terms if t in found))
        for t in asked
        if any(t in found for found in terms)
    }
    scores: list[float] = []
    for (_, sentence, heading), found in zip(sentences, terms, strict=True):
        score = sum(rarity.get(t, 0.0) for t in asked & found)
        # A section is about its heading: "## Duskwine" lends its name to the section's sentences.
        score += sum(rarity.get(t, 0.0) / 2 for t in (asked & _terms(heading)) - found)
        if score and "when" in lowered and time_phrases(sentence):
            score += 1
        if score and re.search(r"how (?:many|much|long|old)", lowered) and _NUMBER.search(sentence):
            score += 1
        if score and re.search(r"\b(?:who|where)\b", lowered) and _CAPITAL.search(sentence):
            score += 0.5
        scores.append(score)
    if not scores or max(scores) == 0:
        return []
    top = max(range(len(scores)), key=lambda i: (scores[i], -i))
    home = sentences[top][0]

    def weight(i: int) -> float:
        where = sentences[i][0]
        share = 0.25 if where == home else 0.5 if where[0] == home[0] and home[0] else 2.0
        return scores[i] + (scores[top] if scores[i] >= scores[top] * share else 0.0)

    ranked = sorted(range(len(sentences)), key=lambda i: (-weight(i), i))
    chosen = [i for i in ranked if weight(i) >= scores[top] * 0.85][:limit]
    return [sentences[i][1] for i in sorted(chosen)]


# -- RAG ---------------------------------------------------------------------------------------

_QUESTION_LABEL = re.compile(
    r"(?:^|\n)\s*(?:Query|Question|Original question|Follow Up Input)\s*:\s*(.+?)\s*"
    r"(?=\n|Answer\s*:|Context\s*:|$)",
    re.IGNORECASE,
)
_ORIGINAL_QUERY = re.compile(r"original query is as follows:\s*(.+)", re.IGNORECASE)
_EXISTING_ANSWER = re.compile(
    r"existing answer:\s*(.*?)\n\s*We have the opportunity", re.IGNORECASE | re.DOTALL
)
_CONTEXT_LABEL = re.compile(
    r"(?:^|\n)\s*Context\s*:\s*(.*?)(?=\n\s*(?:Question|Query|Answer)\s*:|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_CONTEXT_INTRO = re.compile(
    r"(?:relevant documents for the context|following (?:pieces of )?(?:retrieved )?context"
    r"|context information is below|based (?:only )?on the (?:following|given) context"
    r"|use the (?:given|provided) context)[^\n]*\n(.*)",
    re.IGNORECASE | re.DOTALL,
)


def _context_of(text: str) -> str | None:
    parts = _DASHES.split(text)
    if len(parts) >= 3 and re.search(r"context", parts[0], re.IGNORECASE):
        return parts[1]
    if "context" not in text.lower():
        return None
    labelled = _CONTEXT_LABEL.search(text)
    if labelled and labelled.group(1).strip():
        return labelled.group(1)
    intro = _CONTEXT_INTRO.search(text)
    if intro and intro.group(1).strip():
        return re.split(r"\n\s*(?:Question|Query)\s*:", intro.group(1), maxsplit=1)[0]
    return None


def rag_answer(messages: Messages, text_of: TextOf) -> str | None:
    """Context plus a question: the context sentences that best answer it."""
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        return None
    last = text_of(users[-1]["content"])
    system = "\n".join(text_of(m["content"]) for m in messages if m["role"] == "system")
    context = _context_of(last)
    question: str | None = None
    if context is not None:
        original = _ORIGINAL_QUERY.search(last)
        labels = _QUESTION_LABEL.findall(last.replace(context, " "))
        question = original.group(1) if original else (labels[-1] if labels else None)
        existing = _EXISTING_ANSWER.search(last)
        if existing:  # LlamaIndex's refine step: the answer so far competes with the new context
            context = f"{existing.group(1).removeprefix('[emulator] ')}\n\n{context}"
    else:
        context = _context_of(system)
        question = last
    if context is None or not question:
        return None
    found = best_sentences(context, question)
    if not found:
        return "[emulator] The context does not answer this question."
    return "[emulator] " + " ".join(found)


def condensed_question(messages: Messages, text_of: TextOf) -> str | None:
    """A "rephrase as a standalone question" prompt: the follow-up question itself.

    The follow-up is labelled "Follow Up Input:" (LlamaIndex) or, when the instruction is in the
    system message (LangChain's history-aware retriever), it is the last user message.
    """
    last = next((text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    system = " ".join(text_of(m["content"]) for m in messages if m["role"] == "system")
    if "standalone question" in last.lower():
        found = re.search(
            r"Follow Up (?:Input|Question)\s*:\s*(.+?)\s*(?:\n|$)", last, re.IGNORECASE
        )
        return found.group(1).strip() if found else None
    if "standalone question" in system.lower() and last.strip():
        return " ".join(last.split())
    return None


# -- selectors ---------------------------------------------------------------------------------

_CHOICE = re.compile(r"^\s*\((\d+)\)\s*(.+?)(?=^\s*\(\d+\)|\Z)", re.MULTILINE | re.DOTALL)
_SELECT_QUESTION = re.compile(r"relevant to the question:\s*'(.*?)'\s*$", re.MULTILINE | re.DOTALL)


def selection(messages: Messages, text_of: TextOf) -> str | None:
    """LlamaIndex's LLMSingleSelector / LLMMultiSelector prompt: the best numbered choice."""
    last = next((text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    if "choices are given below" not in last or "choice" not in last.split("---")[-1]:
        return None
    question = _SELECT_QUESTION.search(last)
    listed = _DASHES.split(last)
    if question is None or len(listed) < 3:
        return None
    choices = [(int(n), " ".join(text.split())) for n, text in _CHOICE.findall(listed[1])]
    if not choices:
        return None
    asked = _terms(question.group(1))
    scores = [len(asked & _terms(text)) for _, text in choices]
    best = max(range(len(choices)), key=lambda i: (scores[i], -i))
    number, text = choices[best]
    reason = f"[emulator] choice {number} shares the most words with the question: {text[:80]}"
    return json.dumps([{"choice": number, "reason": reason}])


# -- JSON programs -----------------------------------------------------------------------------

_SCHEMA_INTROS = (
    "Here's a JSON schema to follow:",
    "Here is the output schema:",
    "conforms to the JSON schema below",
    "matches the following JSON schema",
)


_INSTRUCTIONS_START = "The output should be formatted as a JSON instance"


def _json_object_at(text: str, start: int) -> tuple[Any, int] | None:
    decoder = json.JSONDecoder()
    brace = text.find("{", start)
    while brace != -1:
        try:
            value, end = decoder.raw_decode(text, brace)
        except ValueError:
            brace = text.find("{", brace + 1)
            continue
        return value, end
    return None


def schema_program(messages: Messages, text_of: TextOf) -> str | None:
    """A prompt carrying a JSON schema to follow (text-completion programs, output parsers).

    The reply is a JSON object valid against that schema, its values drawn from the rest of the
    prompt by field meaning.
    """
    last = next((text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    system = "\n".join(text_of(m["content"]) for m in messages if m["role"] == "system")
    for text in (last, system):
        found = _schema_after_intro(text)
        if found is None:
            continue
        schema, before, after = found
        prompt = f"{before}\n{after}" + (f"\n{last}" if text is system else "")
        prompt = prompt.strip()
        values = PromptValues(focus_section(prompt), prompt)
        return json.dumps(generate(schema, values=values), ensure_ascii=False)
    return None


def _schema_after_intro(text: str) -> tuple[dict[str, Any], str, str] | None:
    """The JSON schema after a "schema to follow" phrase; the text before and after the
    instructions that carry it."""
    # LlamaIndex leaves its template's escaped braces in: there {{ }} stands for { }.
    unescaped = text.replace("{{", "{").replace("}}", "}")
    for plain in (unescaped, text) if "{{" in text else (text, unescaped):
        intro = max(plain.rfind(marker) for marker in _SCHEMA_INTROS)
        if intro < 0:
            return None
        position = intro
        while (candidate := _json_object_at(plain, position)) is not None:
            value, end = candidate
            if isinstance(value, dict) and ("properties" in value or "type" in value):
                opening = plain.find(_INSTRUCTIONS_START)
                start = opening if 0 <= opening < intro else intro
                return value, plain[:start], re.sub(r"^\s*```", "", plain[end:])
            position = end
    return None


def focus_section(text: str) -> str:
    """The section of ``text`` about what its first line asks for ("Extract the Duskwine ...").

    Markdown sections and paragraphs are searched for the first proper noun of the first line;
    the whole text is returned when there is none.
    """
    first, _, rest = text.partition("\n")
    names = proper_nouns(first)
    if not names or not rest:
        return text
    sections = re.split(r"\n(?=#+\s)", rest)
    if len(sections) == 1:
        sections = re.split(r"\n\s*\n", rest)
    for name in names:
        for section in sections:
            if re.search(rf"\b{re.escape(name)}\b", section):
                return f"{first}\n{section}"
    return text


# -- ReAct -------------------------------------------------------------------------------------

_TOOL_BLOCK = re.compile(
    r"^> Tool Name:\s*(\S+)\s*\nTool Description:(.*?)\nTool Args:\s*(\{.*?\})\s*$",
    re.MULTILINE | re.DOTALL,
)


def react_step(
    messages: Messages,
    text_of: TextOf,
    pick_tool: Callable[[list[str], str], str | None],
) -> str | None:
    """LlamaIndex's ReAct format: a Thought and an Action, or, after an Observation, the Answer.

    ``pick_tool(names, question)`` says which tool the question names (the same rule as for
    function calling); with none named, the step answers directly.
    """
    system = "\n".join(text_of(m["content"]) for m in messages if m["role"] == "system")
    if "Action Input:" not in system or "Thought:" not in system:
        return None
    tail = text_of(messages[-1]["content"]) if messages[-1]["role"] == "user" else ""
    question = next(
        (
            text_of(m["content"])
            for m in reversed(messages)
            if m["role"] == "user" and not text_of(m["content"]).startswith("Observation:")
        ),
        "",
    )
    if tail.startswith("Observation:"):
        observation = " ".join(tail.removeprefix("Observation:").split())
        action = next(
            (
                found.group(1)
                for m in reversed(messages)
                if m["role"] == "assistant"
                and (found := re.search(r"^Action:\s*(\S+)", text_of(m["content"]), re.M))
            ),
            "the tool",
        )
        return (
            "Thought: I can answer without using any more tools. I'll use the user's language "
            f"to answer\nAnswer: [emulator] {action} returned {observation[:300]}"
        )
    tools = {name: args for name, _, args in _TOOL_BLOCK.findall(system)}
    name = pick_tool(list(tools), question)
    if name is None:
        return (
            "Thought: I can answer without using any more tools. I'll use the user's language "
            f"to answer\nAnswer: [emulator] You said: {' '.join(question.split())[:300]}"
        )
    try:
        schema = json.loads(tools[name])
    except ValueError:
        schema = {"type": "object"}
    arguments = generate(schema, values=PromptValues(question, exclude=[name]))
    return (
        "Thought: The current language of the user is: English. I need to use a tool to help "
        f"me answer the question.\nAction: {name}\nAction Input: "
        f"{json.dumps(arguments, ensure_ascii=False)}"
    )

"""The OpenAI stand-in's "model": deterministic answers built from the request, not a real LLM.

No language model runs offline here, so the stand-in answers by rule. The rules are simple enough
to predict in a test, and rich enough that what matters to a voice pipeline is visible:

- **Answers come from the last user message.** The same conversation always gets the same answer.
- **Retrieval context is used.** If a message carries retrieved passages (see
  :func:`extract_passages` for the recognized layouts), the answer quotes the first passage's first
  sentence (and its second sentence if any), so a RAG turn sounds different from a plain one and a
  test can see which passage reached the model. A retrieval block with no passages gives an "I
  found nothing" answer, so an empty retrieval is visible too.
- **Several sentences, the first one short** (~10 estimated tokens), so first-sentence timing
  (what TTS waits for) is meaningful and distinct from the full response time.
- **Tool calls** are made only when the request offers tools, ``tool_choice`` is not ``"none"``,
  the last message is a user message, and either ``tool_choice`` forces a function, or it is
  ``"required"`` (the mentioned tool, else the first), or the user *mentions* a tool: its full
  name (``get_weather`` or ``get weather``) or every word of its name except generic verbs
  (get, fetch, look, search, find, ...; so ``get_weather`` is mentioned by "what's the weather").
  Arguments are derived from the JSON schema (see :func:`tool_arguments`). After a tool result,
  the answer reports it.

Token counts are estimates, not a tokenizer: ``ceil(characters / 4)`` per text (OpenAI's rule of
thumb for English), plus 4 per message and 3 per request for the chat framing, plus the JSON of
the tool definitions. Usage numbers are therefore plausible and consistent, not exact.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "StandinReply",
    "ToolCall",
    "choose_tool_call",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "extract_passages",
    "message_text",
    "reply_to",
    "split_stream_pieces",
    "tool_arguments",
]

ReplySource = Literal["plain", "retrieval", "retrieval-empty", "tool-result", "tool-call", "empty"]

_OPENERS = (
    "Sure, here is the short answer to that.",
    "Good question, here is what I can say.",
    "Happy to help with that one right away.",
)
_RAG_OPENER = "Here is what the knowledge base says."
_HONESTY = (
    "I am a loopback stand-in for the language model, so I can only repeat what you said "
    "and anything I am given to read."
)

_GENERIC_TOOL_WORDS = frozenset(
    "get fetch lookup look up search find set call do run make query check retrieve list "
    "tool function".split()
)

_MARKER = re.compile(
    r"(?im)^[ \t]*(?:#+[ \t]*)?(?:the[ \t]+)?"
    r"(?:retrieved|relevant|reference|knowledge(?:[ \t]+base)?|context|background|documents?|"
    r"passages?|sources?|search[ \t]+results?|excerpts?)"
    r"(?:[ \t]+[\w-]+){0,5}[ \t]*:"
)
_TAG = re.compile(
    r"(?is)<(context|passages?|documents?|knowledge|retrieved[\w-]*|sources?)>(.*?)(?:</\1>|\Z)"
)
_ITEM = re.compile(
    r"(?im)^[ \t]*(?:\[\d+\]|\(\d+\)|\d+[.)]|[-*\u2022]|"
    r"(?:passage|document|source|result|doc)[ \t]*#?\d*[ \t]*:)[ \t]*"
)
_INNER_TAG = re.compile(r"(?is)<(passage|document|doc|source|result)\b[^>]*>(.*?)</\1>")
_EMPTY_PASSAGE = re.compile(
    r"(?i)^\W*(?:none|n/?a|empty|nothing(?: found)?|no (?:relevant |matching )?"
    r"(?:passages?|documents?|results?|context|information|matches)(?: (?:found|available))?)\W*$"
)
_QUESTION = re.compile(r"(?im)^[ \t]*(?:question|query|user(?: question)?|q)[ \t]*:[ \t]*(.+)$")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"')\]]*|$)")


@dataclass(frozen=True)
class ToolCall:
    """A function call the stand-in decided to make.

    Parameters:
        id: Deterministic call id (``call_<hash>``).
        name: Function name.
        arguments: JSON-encoded arguments, as OpenAI sends them.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class StandinReply:
    """What the stand-in answers.

    Parameters:
        text: The answer text (None for a tool call).
        tool_call: The function call (None for a text answer).
        source: Which rule produced it.
        passage: The retrieved passage the answer quotes, if any.
        question: The user text the answer responds to.
    """

    text: str | None
    tool_call: ToolCall | None
    source: ReplySource
    passage: str | None = None
    question: str = ""


def estimate_tokens(text: str) -> int:
    """Estimated tokens in ``text``: ``ceil(len / 4)``, 0 for empty text."""
    return math.ceil(len(text) / 4) if text else 0


def message_text(content: Any) -> str:
    """The text of a message ``content`` (string, list of parts, or None)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """Estimated prompt tokens: message texts + 4 per message + 3, plus the tools' JSON."""
    total = 3
    for m in messages:
        total += 4 + estimate_tokens(message_text(m.get("content")))
        for call in m.get("tool_calls") or ():
            total += estimate_tokens(json.dumps(call, separators=(",", ":")))
    if tools:
        total += estimate_tokens(json.dumps(list(tools), separators=(",", ":")))
    return total


def split_stream_pieces(text: str) -> list[str]:
    """Split ``text`` into streamed pieces the way tokens arrive: one word with its leading space."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(" ".join(text.split())) if s.strip()]


def _terminated(text: str) -> str:
    text = text.strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


def _clean_passage(text: str) -> str:
    text = _ITEM.sub("", text, count=1).strip()
    # A leading "(source: x, score: 0.9)" or "[id=...]" label is metadata, not content.
    text = re.sub(r"^(?:\([^)]{0,80}\)|\[[^\]]{0,80}\])[ \t]*[:\-]?[ \t]*", "", text)
    return " ".join(text.split())


def _split_block(block: str) -> list[str]:
    inner = _INNER_TAG.findall(block)
    if inner:
        # XML-like elements carry escaped text (``&amp;``, ``&lt;``): quote what the document
        # says, not its escaping, or the bot reads "amp" aloud.
        chunks = [html.unescape(body) for _, body in inner]
    elif len(_ITEM.findall(block)) >= 1:
        starts = [m.start() for m in _ITEM.finditer(block)]
        chunks = [block[a:b] for a, b in zip(starts, [*starts[1:], len(block)], strict=True)]
        lead = block[: starts[0]].strip()
        if lead:
            chunks.insert(0, lead)
    else:
        chunks = re.split(r"\n[ \t]*\n", block)
    passages = [_clean_passage(c) for c in chunks]
    return [p for p in passages if p]


def _retrieval_block(text: str) -> tuple[str, int, int] | None:
    """The retrieval block of a message: (block text, start, end) or None."""
    tag = _TAG.search(text)
    if tag:
        return tag.group(2), tag.start(), tag.end()
    marker = _MARKER.search(text)
    if marker:
        rest = text[marker.end() :]
        question = _QUESTION.search(rest)
        end = marker.end() + (question.start() if question else len(rest))
        return text[marker.end() : end], marker.start(), end
    return None


def extract_passages(messages: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """Retrieved passages given to the model, or None if the request carries no retrieval block.

    The most recent system, developer or user message that holds a retrieval block wins. A block
    is either an XML-like tag (``<context>``, ``<passages>``, ``<documents>``, ``<knowledge>``,
    ``<retrieved...>``, ``<sources>``) or a heading line ending in a colon that starts with
    retrieved / relevant / reference / knowledge (base) / context / background / document(s) /
    passage(s) / source(s) / search results / excerpts (up to five more words allowed, e.g.
    ``Relevant passages from the handbook:``). The block runs to the end of the message or to a
    ``Question:`` line. Passages inside it are ``<passage>``/``<document>`` elements, numbered or
    bulleted items (``[1]``, ``1.``, ``- ``, ``Passage 2:``), or blank-line separated paragraphs. The
    text of an element is unescaped (what ``rag.passage_injection`` writes is XML-escaped). A
    leading ``(source ...)``/``[...]`` label is dropped. An empty list means a retrieval block with
    nothing in it (``Context: none``).
    """
    for m in reversed(messages):
        if m.get("role") not in ("system", "developer", "user"):
            continue
        found = _retrieval_block(message_text(m.get("content")))
        if found is None:
            continue
        passages = _split_block(found[0])
        if len(passages) == 1 and _EMPTY_PASSAGE.match(passages[0]):
            return []
        return passages
    return None


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            text = message_text(m.get("content"))
            found = _retrieval_block(text)
            if found is not None:
                question = _QUESTION.search(text[found[2] :]) or _QUESTION.search(text)
                if question:
                    return question.group(1).strip()
                outside = (text[: found[1]] + " " + text[found[2] :]).strip()
                return " ".join(outside.split())
            return " ".join(text.split())
    return ""


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return re.findall(r"[a-z0-9]+", text.lower())


def _tool_name(tool: Mapping[str, Any]) -> str:
    fn = tool.get("function") or {}
    return str(fn.get("name") or tool.get("name") or "")


def _mentions(text: str, name: str) -> bool:
    words = _words(text)
    joined = " " + " ".join(words) + " "
    name_words = _words(name)
    if not name_words:
        return False
    if name.lower() in text.lower() or f" {' '.join(name_words)} " in joined:
        return True
    specific = [w for w in name_words if w not in _GENERIC_TOOL_WORDS]
    return bool(specific) and all(w in words for w in specific)


def _subject(text: str, name: str) -> str:
    """The part of the user text a string argument most likely wants."""
    stripped = text.strip().rstrip(".!?").strip()
    match = None
    for m in re.finditer(r"(?i)\b(?:in|for|about|of|at|on|called|named)\s+", stripped):
        match = m
    if match is not None and stripped[match.end() :].strip():
        return stripped[match.end() :].strip()
    name_words = set(_words(name))
    rest = [w for w in stripped.split() if _words(w) and _words(w)[0] not in name_words]
    return " ".join(rest) or stripped


def tool_arguments(schema: Mapping[str, Any] | None, text: str, name: str = "") -> dict[str, Any]:
    """Deterministic arguments for a function with JSON schema ``schema``, from the user text.

    Only required properties are filled (all properties if the schema lists none): a string gets
    the text after the last "in/for/about/of/at/on" (``"Paris"`` from "weather in Paris"), else
    the text without the tool's words; an enum gets its first value; a number the first number in
    the text (else 1); a boolean True; an array a one-item list for string items (else empty); an
    object ``{}``.
    """
    schema = schema or {}
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = schema.get("required") or list(props)
    args: dict[str, Any] = {}
    number = re.search(r"-?\d+(?:\.\d+)?", text)
    for key in required:
        prop = props.get(key) or {}
        kind = prop.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if prop.get("enum"):
            args[key] = prop["enum"][0]
        elif kind in ("number", "integer"):
            value = float(number.group()) if number else 1
            args[key] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            args[key] = True
        elif kind == "array":
            items = prop.get("items") or {}
            args[key] = [_subject(text, name)] if items.get("type") == "string" else []
        elif kind == "object":
            args[key] = {}
        else:
            args[key] = _subject(text, name)
    return args


def choose_tool_call(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: Any = None,
) -> ToolCall | None:
    """The function call the stand-in makes for this request, if any (rule in the module doc)."""
    if not tools or tool_choice == "none" or not messages:
        return None
    if messages[-1].get("role") != "user":
        return None
    text = _last_user_text(messages)
    by_name = {_tool_name(t): t for t in tools if _tool_name(t)}
    chosen: str | None = None
    if isinstance(tool_choice, Mapping):
        forced = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        chosen = forced if forced in by_name else None
    if chosen is None:
        chosen = next((n for n in by_name if _mentions(text, n)), None)
    if chosen is None and tool_choice == "required" and by_name:
        chosen = next(iter(by_name))
    if chosen is None:
        return None
    fn = by_name[chosen].get("function") or by_name[chosen]
    args = tool_arguments(fn.get("parameters"), text, chosen)
    digest = hashlib.sha1(f"{chosen}\n{text}".encode()).hexdigest()[:24]
    return ToolCall(id=f"call_{digest}", name=chosen, arguments=json.dumps(args))


def _tool_result(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    if not messages or messages[-1].get("role") != "tool":
        return None
    result = message_text(messages[-1].get("content"))
    call_id = messages[-1].get("tool_call_id")
    name = "lookup"
    for m in reversed(messages):
        for call in m.get("tool_calls") or ():
            if call.get("id") == call_id:
                name = (call.get("function") or {}).get("name") or name
    return name, result


def reply_to(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
) -> StandinReply:
    """The stand-in's deterministic reply to a chat completion request."""
    question = _last_user_text(messages)
    call = choose_tool_call(messages, tools, tool_choice)
    if call is not None:
        return StandinReply(text=None, tool_call=call, source="tool-call", question=question)

    tool = _tool_result(messages)
    if tool is not None:
        name, result = tool
        result = " ".join(result.split())
        if len(result) > 200:
            result = result[:197].rstrip() + "..."
        text = " ".join(
            [
                "Here is the result of that lookup.",
                _terminated(f"The {name.replace('_', ' ')} tool returned: {result or 'nothing'}"),
                "Let me know if you need anything else.",
            ]
        )
        return StandinReply(text=text, tool_call=None, source="tool-result", question=question)

    if not question:
        text = "Sorry, I did not catch that. Could you say it again?"
        return StandinReply(text=text, tool_call=None, source="empty")

    asked = _terminated(f"You asked: {question}")
    passages = extract_passages(messages)
    if passages is not None and not passages:
        text = " ".join(
            [
                "I looked in the knowledge base for that.",
                "I could not find any passage about it.",
                asked,
                "Try asking in a different way.",
            ]
        )
        return StandinReply(text=text, tool_call=None, source="retrieval-empty", question=question)
    if passages:
        passage = passages[0]
        sentences = _sentences(passage) or [passage]
        parts = [_RAG_OPENER, _terminated(f"The first passage says: {sentences[0]}")]
        if len(sentences) > 1:
            parts.append(_terminated(sentences[1]))
        parts.append("I hope that answers your question.")
        return StandinReply(
            text=" ".join(parts),
            tool_call=None,
            source="retrieval",
            passage=passage,
            question=question,
        )
    opener = _OPENERS[zlib.crc32(question.encode()) % len(_OPENERS)]
    text = " ".join([opener, asked, _HONESTY, "Ask another question whenever you like."])
    return StandinReply(text=text, tool_call=None, source="plain", question=question)

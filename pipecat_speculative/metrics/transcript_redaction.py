"""What the turn timing sinks do with the user's words: keep, hash or drop them.

A turn record carries the committed user text and the text of every speculation, which is what
makes a record useful when debugging a mismatch. It is also personal data, and the places the
records go (an INFO log shipped to a log service, a JSONL file on disk) are read by more people
and kept longer than the conversation itself. So each sink redacts, with these defaults:

- **Logs: ``drop``.** Log lines are the most widely copied output (aggregators, support tickets,
  CI artefacts) and the timing breakdown is what a log line is for; the text adds nothing there.
- **JSONL: ``hash``.** The file is for analysis: a stable digest still tells whether a
  speculation's text equals the committed text and groups repeated phrases, without the words.
  Short phrases can be guessed back from an unsalted digest ("yes", "hello"), so a hash is
  pseudonymous, not anonymous: use ``drop`` when that matters, ``off`` on test data.

The timings, counts and reasons are never redacted.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

__all__ = ["TranscriptRedaction", "redact_record", "redact_text"]


class TranscriptRedaction(StrEnum):
    """How user text is written by a sink."""

    OFF = "off"
    """Written as is."""
    HASH = "hash"
    """Replaced by ``"sha256:"`` and the first 16 hex digits of its SHA-256 digest."""
    DROP = "drop"
    """Replaced by None."""


def redact_text(text: str | None, mode: TranscriptRedaction | str) -> str | None:
    """``text`` as ``mode`` wants it written; None and ``""`` stay as they are."""
    mode = TranscriptRedaction(mode)
    if not text or mode is TranscriptRedaction.OFF:
        return text
    if mode is TranscriptRedaction.DROP:
        return None
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def redact_record(data: dict[str, Any], mode: TranscriptRedaction | str) -> dict[str, Any]:
    """A copy of a turn record's dict form with its user texts redacted.

    Covers ``user_text`` and each speculation's ``text``; other records (the session summary)
    carry no user text and come back unchanged.
    """
    mode = TranscriptRedaction(mode)
    if mode is TranscriptRedaction.OFF:
        return data
    out = dict(data)
    if "user_text" in out:
        out["user_text"] = redact_text(out["user_text"], mode)
    if isinstance(out.get("speculations"), list):
        out["speculations"] = [
            {**s, "text": redact_text(s.get("text"), mode)} if isinstance(s, dict) else s
            for s in out["speculations"]
        ]
    return out

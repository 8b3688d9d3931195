"""A frame any processor can push to mark a moment of the turn for the turn timing observer."""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import SystemFrame

__all__ = ["RAG_DONE", "RAG_SKIP", "RAG_START", "TimingMarkFrame"]

RAG_START = "rag_start"
"""Retrieval for the upcoming answer started."""
RAG_DONE = "rag_done"
"""Retrieval finished (with or without results)."""
RAG_SKIP = "rag_skip"
"""Retrieval was not needed (a reused result, or nothing to retrieve)."""


@dataclass
class TimingMarkFrame(SystemFrame):
    """Marks a moment the observer cannot see in Pipecat's own frames (retrieval, so far).

    Pushing a mark rather than calling the observer keeps the processor free of any reference to
    it, and the observer times the mark by its push on the pipeline clock, like every other
    moment. A system frame, so it is pushed at once and never queued behind data. Nothing else
    handles it: it travels to the end of the pipeline and is dropped there.

    Parameters:
        mark: One of :data:`RAG_START`, :data:`RAG_DONE`, :data:`RAG_SKIP`.
        detail: Optional free text for logs (the query, the reason for a skip).
    """

    mark: str = RAG_START
    detail: str | None = None

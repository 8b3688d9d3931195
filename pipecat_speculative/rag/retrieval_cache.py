"""Single-flight retrieval per normalized query, with a bounded TTL cache of finished results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy, NormalizedMatch

from pipecat_speculative.rag.base_retriever import Passage

__all__ = ["RetrievalCache", "RetrievalResult"]


@dataclass(frozen=True)
class RetrievalResult:
    """What a retrieval task returns; it never raises, so every joiner sees the same result.

    Parameters:
        passages: The passages, best first (empty when nothing matched); None on error.
        error: Why it failed, or None.
        secs: How long it took.
    """

    passages: tuple[Passage, ...] | None
    error: str | None
    secs: float


@dataclass
class _Entry:
    query: str
    task: asyncio.Task[RetrievalResult]
    started_at: float
    finished_at: float | None = None


class RetrievalCache:
    """Finds the retrieval for a query: one in flight (to join) or a fresh finished one (to reuse).

    Queries are the same when the match policy says so; by default Pipecat's
    ``NormalizedMatch`` (case, punctuation and whitespace ignored), the rule the speculative
    turn strategy uses to decide that a committed transcript confirms its speculation. So
    whenever a commit adopts a speculation, its retrieval is the speculation's too.

    A finished result is reused for ``ttl_secs`` (an empty result too: asking again returns
    the same nothing, only later). A failed or cancelled retrieval is forgotten at once, so the
    next request tries again. At most ``max_entries`` are kept; the oldest finished go first,
    and retrievals in flight are never evicted (their joiners wait on them).

    The cache holds tasks but does not create or cancel them: the owning processor does both,
    through Pipecat's task manager, so none outlives the pipeline.

    Args:
        ttl_secs: How long a finished result is reused.
        max_entries: Entries kept at most (in flight ones may exceed it).
        match_policy: When two queries are the same; ``NormalizedMatch`` when None.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        ttl_secs: float,
        max_entries: int,
        match_policy: EagerMatchPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._ttl = ttl_secs
        self._max = max_entries
        self._match = match_policy or NormalizedMatch()
        self._clock = clock
        self._entries: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, query: str) -> asyncio.Task[RetrievalResult] | None:
        """The retrieval task for ``query``: in flight, or finished within the TTL; else None."""
        self._expire()
        for entry in self._entries:
            if self._match.matches(entry.query, query):
                return entry.task
        return None

    def add(self, query: str, task: asyncio.Task[RetrievalResult]) -> None:
        """Remember ``task`` as the retrieval for ``query`` (evicting the oldest finished)."""
        entry = _Entry(query=query, task=task, started_at=self._clock())
        self._entries.append(entry)
        task.add_done_callback(lambda t: self._finished(entry, t))
        self._evict()

    def in_flight(self) -> list[asyncio.Task[RetrievalResult]]:
        """Retrievals not finished yet (for cancellation at cleanup)."""
        return [e.task for e in self._entries if not e.task.done()]

    def clear(self) -> None:
        """Forget everything (the tasks are not cancelled)."""
        self._entries.clear()

    def _finished(self, entry: _Entry, task: asyncio.Task[RetrievalResult]) -> None:
        entry.finished_at = self._clock()
        if task.cancelled() or task.exception() is not None or task.result().error is not None:
            if entry in self._entries:
                self._entries.remove(entry)

    def _expire(self) -> None:
        now = self._clock()
        self._entries = [
            e for e in self._entries if e.finished_at is None or now - e.finished_at < self._ttl
        ]

    def _evict(self) -> None:
        while len(self._entries) > self._max:
            finished = [e for e in self._entries if e.finished_at is not None]
            if not finished:
                return
            self._entries.remove(min(finished, key=lambda e: e.finished_at or 0.0))

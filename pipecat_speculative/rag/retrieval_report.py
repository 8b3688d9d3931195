"""What retrieval did for one inference: the processor's per-context report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RetrievalOutcome", "RetrievalReport", "RetrievalSource"]


class RetrievalSource(StrEnum):
    """Where an inference's passages came from.

    - ``STARTED``: a retrieval was started for it.
    - ``JOINED``: it joined a retrieval already in flight for the same query (a prefetch, or
      the speculation's when the commit asks the same question).
    - ``REUSED``: a finished result for the same query was reused (an empty one too).
    - ``NONE``: nothing to retrieve (no user text), or the context was dropped before asking.
    """

    STARTED = "started"
    JOINED = "joined"
    REUSED = "reused"
    NONE = "none"


class RetrievalOutcome(StrEnum):
    """What the inference got.

    - ``PASSAGES``: passages were injected.
    - ``EMPTY``: the retrieval found nothing; the context went on unchanged.
    - ``TIMEOUT``: the budget ran out; the context went on without passages.
    - ``ERROR``: the retriever failed; the context went on without passages.
    - ``DROPPED``: the context was withdrawn, interrupted or superseded while it waited, and
      was not forwarded at all.
    - ``SKIPPED``: no query text; the context went on unchanged.
    """

    PASSAGES = "passages"
    EMPTY = "empty"
    TIMEOUT = "timeout"
    ERROR = "error"
    DROPPED = "dropped"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RetrievalReport:
    """One context's retrieval, reported by ``on_retrieval_report``.

    Parameters:
        query: The query text (the context's last user message).
        speculative: Whether the context was a speculation.
        source: Started, joined or reused (see :class:`RetrievalSource`).
        outcome: What the inference got (see :class:`RetrievalOutcome`).
        hits: Passages injected.
        waited_secs: How long the context was held for its retrieval (0 for a reuse).
        retrieval_secs: How long the retrieval itself took, when it finished.
        detail: The error, or why the context was dropped.
    """

    query: str
    speculative: bool
    source: RetrievalSource
    outcome: RetrievalOutcome
    hits: int = 0
    waited_secs: float = 0.0
    retrieval_secs: float | None = None
    detail: str | None = None

    def summary(self) -> str:
        """A short line for logs and timing marks."""
        text = (
            f"{self.outcome.value}, {self.source.value}, hits={self.hits}, "
            f"waited={self.waited_secs * 1000:.0f} ms"
        )
        return f"{text} ({self.detail})" if self.detail else text

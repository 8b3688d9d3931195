"""The retriever interface every RAG backend implements, and the passage it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BaseRetriever", "Passage"]


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk of a document.

    Frozen so a cached result can be shared by every inference that reuses it: the speculative
    and the committed inference must see exactly the same passages.

    Parameters:
        id: Stable chunk id (the same chunk keeps its id across re-ingests).
        text: The chunk text given to the LLM.
        score: Similarity to the query (higher is closer; cosine for the built-in backends).
        metadata: Whatever the backend stored with the chunk (``source``, ``chunk``, ...).
    """

    id: str
    text: str
    score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


class BaseRetriever(ABC):
    """Finds the passages relevant to a query.

    Implementations must not block the event loop: network or CPU work (embedding, search) runs
    in a thread or an async client, because the retriever is called from a voice pipeline where
    a blocked loop delays audio and every other frame.
    """

    @abstractmethod
    async def retrieve(
        self, query: str, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        """The ``top_k`` passages closest to ``query``, best first.

        Args:
            query: The text to search for (the user's words).
            top_k: How many passages at most.
            filter: Metadata filter; the backends accept at least ``{"field": value}``
                equality.

        Returns:
            The passages, best first; empty when nothing qualifies.
        """

    async def warmup(self) -> None:
        """Load models or open connections before the first query (default: nothing to do)."""
        return None

    async def close(self) -> None:
        """Release what the retriever holds (default: nothing)."""
        return None

    def __str__(self) -> str:
        return type(self).__name__

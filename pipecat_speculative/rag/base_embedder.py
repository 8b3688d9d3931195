"""The embedder interface: text to unit vectors, off the event loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

__all__ = ["BaseEmbedder"]


class BaseEmbedder(ABC):
    """Turns texts into L2-normalized float32 vectors.

    Normalized vectors make cosine similarity a dot product, which is what the local store
    computes; a Pinecone index should use the cosine metric with the same embedder. Queries and
    documents must be embedded by the same model, so the embedder is named by :attr:`model_id`
    and the local store refuses vectors of another model.
    """

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Length of every vector."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifies the vector space (vectors of different models are not comparable)."""

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` without blocking the event loop.

        Returns:
            A ``(len(texts), dimension)`` float32 matrix of unit rows.
        """

    async def embed_query(self, text: str) -> np.ndarray:
        """Embed one query text; a ``(dimension,)`` unit vector."""
        return (await self.embed([text]))[0]

    async def warmup(self) -> None:
        """Load the model before the first query (default: nothing to do)."""
        return None

    def __str__(self) -> str:
        return type(self).__name__

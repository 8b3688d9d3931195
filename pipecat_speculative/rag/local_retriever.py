"""The embedded default retriever: the local MiniLM embedder over the local vector store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecat_speculative.rag.base_embedder import BaseEmbedder
from pipecat_speculative.rag.base_retriever import BaseRetriever, Passage
from pipecat_speculative.rag.local_embedder import LocalEmbedder
from pipecat_speculative.rag.local_vector_store import LocalVectorStore

__all__ = ["LocalRetriever"]


class LocalRetriever(BaseRetriever):
    """Retrieval with no server: embed the query, search the store, both in worker threads.

    Args:
        store: The vector store, or a directory to open one in.
        embedder: The query embedder; it must be the one the store was filled with
            (:class:`LocalEmbedder` by default, like ``pipecat-speculative ingest``).
        min_score: Passages scoring below this are dropped. MiniLM cosine scores of unrelated
            text sit around 0.0-0.2; without a floor every question gets its nearest chunk,
            relevant or not, and the LLM is tempted to use it.
    """

    def __init__(
        self,
        store: LocalVectorStore | str | Path,
        *,
        embedder: BaseEmbedder | None = None,
        min_score: float | None = 0.25,
    ):
        self.embedder = embedder or LocalEmbedder()
        if not isinstance(store, LocalVectorStore):
            store = LocalVectorStore(store, model_id=self.embedder.model_id)
        if store.model_id is not None and store.model_id != self.embedder.model_id:
            raise ValueError(
                f"{store} holds vectors of {store.model_id}, the embedder makes "
                f"{self.embedder.model_id}"
            )
        self.store = store
        self.min_score = min_score

    async def warmup(self) -> None:
        """Load the embedding model and read the store."""
        await self.embedder.warmup()
        await asyncio.to_thread(self.store.refresh)

    async def retrieve(
        self, query: str, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        """The ``top_k`` stored chunks closest to ``query`` at or above ``min_score``."""
        vector = await self.embedder.embed_query(query)
        passages = await asyncio.to_thread(self.store.query, vector, top_k=top_k, filter=filter)
        if self.min_score is not None:
            passages = [p for p in passages if p.score >= self.min_score]
        return passages

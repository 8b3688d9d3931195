"""Retrieval from a Pinecone index through the official SDK, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from loguru import logger

from pipecat_speculative.rag.base_embedder import BaseEmbedder
from pipecat_speculative.rag.base_retriever import BaseRetriever, Passage
from pipecat_speculative.rag.local_vector_store import VectorRecord

__all__ = ["PineconeRetriever"]


class PineconeRetriever(BaseRetriever):
    """Queries a Pinecone index (the ``pinecone`` SDK's sync client, called in worker threads).

    The sync client runs in ``asyncio.to_thread`` rather than the SDK's asyncio client because
    it keeps one pooled connection for the process and is the SDK's best-tested path; either
    way the event loop never waits on the network. Queries are embedded by ``embedder``:
    the same model the index was filled with (OpenAI embeddings in production, the local
    MiniLM offline; see ``pipecat-speculative ingest --pinecone-index``).

    Args:
        embedder: Embeds queries (and records in :meth:`upsert`).
        index: A ready SDK ``Index``; built from ``host`` and ``api_key`` when None.
        host: The index host (``https://...pinecone.io``, or a stand-in's ``http://127.0.0.1:P``).
        api_key: The Pinecone API key.
        namespace: The namespace to query and upsert into ("" is Pinecone's default).
        min_score: Matches scoring below this are dropped (cosine; see ``LocalRetriever``).
        text_key: Metadata field holding the chunk text. Pinecone stores vectors, not
            documents, so the text must travel as metadata.
        upsert_batch_size: Vectors per upsert request. The SDK sends one request per batch;
            Pinecone caps a request at 2 MB, and 100 MiniLM vectors with text stay well under.
        request_timeout_secs: Timeout of one request of the client built from ``host`` (the
            SDK's default is 30 s). A query keeps its worker thread until it ends, well after
            the turn stopped waiting for it (``RAGParams.budget_secs``): against a hung index
            the SDK's defaults hold a thread for minutes per query, and a few turns exhaust
            the event loop's default thread pool.
        max_retries: Retries of the client built from ``host`` (the SDK retries 5xx, 429 and
            connection errors 3 times with jittered backoff). One covers a blip within a turn.
    """

    def __init__(
        self,
        *,
        embedder: BaseEmbedder,
        index: Any = None,
        host: str | None = None,
        api_key: str | None = None,
        namespace: str = "",
        min_score: float | None = 0.25,
        text_key: str = "text",
        upsert_batch_size: int = 100,
        request_timeout_secs: float = 5.0,
        max_retries: int = 1,
    ):
        if request_timeout_secs <= 0 or max_retries < 0:
            raise ValueError("request_timeout_secs must be > 0 and max_retries >= 0")
        if index is None:
            if not host:
                raise ValueError("PineconeRetriever needs an index or a host")
            try:
                from pinecone import Pinecone, RetryConfig
            except ImportError as e:  # pragma: no cover - optional dependency
                raise ImportError(
                    "PineconeRetriever needs the pinecone SDK: pip install 'pipecat-speculative[pinecone]'"
                ) from e
            client = Pinecone(
                api_key=api_key or "",
                timeout=request_timeout_secs,
                retry_config=RetryConfig(max_retries=max_retries),
            )
            index = client.Index(host=host)
        self.index = index
        self.embedder = embedder
        self.namespace = namespace
        self.min_score = min_score
        self.text_key = text_key
        self.upsert_batch_size = upsert_batch_size

    def __str__(self) -> str:
        return f"PineconeRetriever(namespace={self.namespace!r})"

    async def warmup(self) -> None:
        """Load the embedder and open the index connection (a stats request)."""
        await self.embedder.warmup()
        await asyncio.to_thread(self.index.describe_index_stats)

    async def retrieve(
        self, query: str, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        """The ``top_k`` matches for ``query`` in the namespace, filtered, at or above the floor.

        ``filter`` is passed to Pinecone as is, so its full filter language applies.
        """
        vector = await self.embedder.embed_query(query)
        kwargs: dict[str, Any] = {
            "vector": [float(x) for x in vector],
            "top_k": top_k,
            "namespace": self.namespace,
            "include_metadata": True,
        }
        if filter:
            kwargs["filter"] = dict(filter)
        response = await asyncio.to_thread(self.index.query, **kwargs)
        passages = []
        for match in response.matches or ():
            score = float(match.score or 0.0)
            if self.min_score is not None and score < self.min_score:
                continue
            metadata = dict(match.metadata or {})
            text = str(metadata.pop(self.text_key, ""))
            passages.append(Passage(id=match.id, text=text, score=score, metadata=metadata))
        return passages

    async def upsert(self, records: Sequence[VectorRecord]) -> int:
        """Upsert ``records`` (text stored under ``text_key``) and check every one arrived.

        The SDK can return without raising when a batch was refused (a 413 from a proxy), so
        the counts it reports are added up and compared.

        Returns:
            How many vectors Pinecone reports as upserted.

        Raises:
            RuntimeError: If Pinecone reports fewer than were sent.
        """
        vectors = [
            {
                "id": r.id,
                "values": [float(x) for x in r.vector],
                "metadata": {**r.metadata, self.text_key: r.text, "hash": r.content_hash},
            }
            for r in records
        ]
        if not vectors:
            return 0
        response = await asyncio.to_thread(
            self.index.upsert,
            vectors=vectors,
            namespace=self.namespace,
            batch_size=self.upsert_batch_size,
            show_progress=False,
        )
        upserted = int(getattr(response, "upserted_count", 0) or 0)
        if upserted != len(vectors):
            raise RuntimeError(f"{self}: Pinecone upserted {upserted} of {len(vectors)} vectors")
        logger.debug(f"{self}: upserted {upserted} vectors")
        return upserted

    async def count(self) -> int:
        """Vectors in the namespace, from ``describe_index_stats``."""
        stats = await asyncio.to_thread(self.index.describe_index_stats)
        namespace = (stats.namespaces or {}).get(self.namespace)
        return int(namespace.vector_count) if namespace is not None else 0

"""Retrieval in the bench and the demo: the sample knowledge base, per-session records, the RAG block.

The bench compares systems on RAG turns only if retrieval really runs and really costs what it
costs in production. So every system retrieves, on every turn, from the sample document
(:func:`~pipecat_speculative.rag.ingest.sample_document`) through a real backend:

- the bench: the **Pinecone stand-in through the real pinecone SDK**
  (:class:`~pipecat_speculative.rag.PineconeRetriever`), one stand-in per system's stack, so a
  query takes the latency profile's ``rag_query_secs`` plus the local embedding;
- the demo (default): the **embedded local store**
  (:class:`~pipecat_speculative.rag.LocalRetriever`), what an offline bot uses.

The document is chunked and embedded once per run (:class:`SampleKnowledgeBase`, one
:class:`~pipecat_speculative.rag.LocalEmbedder` whose model loads once) and the same vectors are
loaded into every index of the run, so all systems search identical data.

Each session gets its own :class:`RecordingRetriever` around the shared retriever: it is what
proves the single-flight claim (one retrieval per distinct query per turn), since it sees every
call that reached the backend, prefetches included, with its query text.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pipecat.turns.user_stop.eager_match_policy import NormalizedMatch
from rich.table import Table

from pipecat_speculative.offline_session import RAG_COUNTERS, SessionResult
from pipecat_speculative.rag.base_embedder import BaseEmbedder
from pipecat_speculative.rag.base_retriever import BaseRetriever, Passage
from pipecat_speculative.rag.ingest import chunk_text, sample_document, vector_records
from pipecat_speculative.rag.local_retriever import LocalRetriever
from pipecat_speculative.rag.local_vector_store import LocalVectorStore, VectorRecord
from pipecat_speculative.rag.pinecone_retriever import PineconeRetriever

__all__ = [
    "SAMPLE_NAMESPACE",
    "RecordingRetriever",
    "RetrievalCall",
    "SampleKnowledgeBase",
    "add_rag_rows",
    "local_store_latency",
    "rag_available",
    "rag_block",
    "widen_default_executor",
]

SAMPLE_NAMESPACE = "sample"
"""The Pinecone namespace the sample document is loaded into."""


def rag_available() -> bool:
    """Whether the local embedder and the pinecone SDK are installed (``rag`` and ``pinecone``).

    The bench needs both; without them it runs with no retrieval and says so, rather than fail.
    """
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ("onnxruntime", "tokenizers", "pinecone"))


def widen_default_executor(workers: int = 64) -> None:
    """Give the running loop a default thread pool wide enough for a whole bench in one process.

    ``PineconeRetriever`` runs the SDK's sync client in ``asyncio.to_thread``, so a query holds
    a default-pool thread for its whole latency (0.45 s on the reference profile). The default
    pool has ``cpu_count + 4`` threads (6 on 2 cores), and the bench runs every system's
    sessions in one process, with their prefetches: the pool fills and the other users of it
    (the TTS stand-in's speech synthesis, the embedder) queue behind sleeping queries, which
    would slow every system for a reason no deployment has. One bot process serves few
    sessions; the bench serves all of them, so it widens the pool.
    """
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-io")
    )


@dataclass(frozen=True)
class RetrievalCall:
    """One call that reached the backend.

    Parameters:
        query: The query text as the processor sent it.
        started: ``time.monotonic()`` when it started.
        secs: How long it took (embedding and search).
        hits: Passages returned (0 on error).
        error: The exception if it failed, ``"cancelled"`` if it was cancelled.
    """

    query: str
    started: float
    secs: float
    hits: int
    error: str | None = None


class RecordingRetriever(BaseRetriever):
    """A retriever that remembers every query it was asked, delegating to a shared one.

    One per session: the inner retriever (and its embedder and connection) is shared by the
    sessions of a system, the record is not. ``close`` does not close the inner retriever,
    which outlives the session.

    Args:
        inner: The retriever that does the work.
    """

    def __init__(self, inner: BaseRetriever):
        self.inner = inner
        self.calls: list[RetrievalCall] = []

    def __str__(self) -> str:
        return f"Recording({self.inner})"

    async def warmup(self) -> None:
        """Warm the inner retriever up (idempotent there)."""
        await self.inner.warmup()

    async def retrieve(
        self, query: str, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        """Retrieve through the inner retriever and record the call (errors too, re-raised)."""
        started = time.monotonic()
        try:
            passages = await self.inner.retrieve(query, top_k=top_k, filter=filter)
        except (Exception, asyncio.CancelledError) as e:
            # A cancelled call still reached the backend (the serial baseline's retrieval is
            # cancelled when the user interrupts): it counts, as "cancelled".
            error = "cancelled" if isinstance(e, asyncio.CancelledError) else repr(e)
            self.calls.append(RetrievalCall(query, started, time.monotonic() - started, 0, error))
            raise
        self.calls.append(RetrievalCall(query, started, time.monotonic() - started, len(passages)))
        return passages


class SampleKnowledgeBase:
    """The sample document, chunked and embedded once, loadable into any number of indexes.

    Args:
        embedder: The embedder shared by ingest and every query of the run (its model loads
            once); a :class:`~pipecat_speculative.rag.LocalEmbedder` when None.
        documents: Markdown or text files; the bundled sample document by default.
    """

    def __init__(
        self, embedder: BaseEmbedder | None = None, documents: Sequence[Path] | None = None
    ):
        if embedder is None:
            from pipecat_speculative.rag.local_embedder import LocalEmbedder

            embedder = LocalEmbedder()
        self.embedder = embedder
        self.documents = list(documents) if documents is not None else [sample_document()]
        self._records: list[VectorRecord] | None = None
        self._lock = asyncio.Lock()

    async def records(self) -> list[VectorRecord]:
        """The chunks with their vectors, computed on the first call only.

        Sources are file names, not paths: the prompt then carries no machine-specific path,
        and every run's ids are the same.
        """
        async with self._lock:
            if self._records is None:
                chunks = [
                    c
                    for doc in self.documents
                    for c in chunk_text(doc.read_text(encoding="utf-8"), source=doc.name)
                ]
                started = time.monotonic()
                vectors = await self.embedder.embed([c.text for c in chunks])
                self._records = vector_records(chunks, vectors)
                logger.debug(
                    f"knowledge base: {len(chunks)} chunks of {len(self.documents)} document(s) "
                    f"embedded in {(time.monotonic() - started) * 1000:.0f} ms"
                )
            return self._records

    async def pinecone_retriever(
        self, standin: Any, *, namespace: str = SAMPLE_NAMESPACE
    ) -> PineconeRetriever:
        """A retriever on ``standin`` (a started Pinecone stand-in), filled with the chunks.

        The upsert goes through the same SDK ``Index`` the queries use, so its connection is
        open before the first turn, for every system alike.
        """
        retriever = PineconeRetriever(
            embedder=self.embedder,
            host=standin.base_url,
            api_key="standin",
            namespace=namespace,
        )
        await retriever.upsert(await self.records())
        return retriever

    async def local_retriever(self, directory: str | Path) -> LocalRetriever:
        """A retriever on a local store in ``directory``, filled with the chunks.

        Re-runs write nothing (the store skips an id stored with the same content hash).
        """
        store = LocalVectorStore(directory, model_id=self.embedder.model_id)
        written = await asyncio.to_thread(store.upsert, await self.records())
        logger.debug(f"knowledge base: {written} chunks written to {store}")
        return LocalRetriever(store, embedder=self.embedder)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _distinct(queries: Sequence[str]) -> list[str]:
    """The queries that differ under Pipecat's ``NormalizedMatch`` (the processor's own rule)."""
    match = NormalizedMatch()
    seen: list[str] = []
    for q in queries:
        if not any(match.matches(q, s) for s in seen):
            seen.append(q)
    return seen


def _per_turn(value: int, committed: int) -> float | None:
    return round(value / committed, 3) if committed else None


def rag_block(
    results: Sequence[SessionResult],
    calls: Mapping[str, Sequence[RetrievalCall]],
    *,
    stacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """A system's retrieval: counters in total and per committed turn, and what reached the LLM.

    Args:
        results: The system's sessions.
        calls: Each session's backend calls, by session id.
        stacks: The system's stand-ins (the OpenAI stand-in's replies tell which answers
            quoted a passage).

    Returns:
        ``counts`` (the processors' counters summed, plus ``backend_calls``), ``per_turn``
        (each divided by committed turns), ``distinct_queries``, ``duplicate_retrievals``
        (backend calls for a query the same session had already retrieved, which the parallel
        processor's single flight rules out), ``retrievals_per_distinct_query``,
        ``backend_p50_ms`` / ``backend_p95_ms`` (embedding and search, as the processor waits
        for them), ``llm_requests_with_passages`` and ``passages_quoted``.
    """
    committed = sum(len(r.records) for r in results)
    counts = {name: sum(r.rag_counters.get(name, 0) for r in results) for name in RAG_COUNTERS}
    session_calls = [list(calls.get(r.session_id, ())) for r in results]
    counts["backend_calls"] = sum(len(c) for c in session_calls)
    counts["backend_cancelled"] = sum(1 for s in session_calls for c in s if c.error == "cancelled")
    distinct = sum(len(_distinct([c.query for c in s])) for s in session_calls)
    secs = [c.secs for s in session_calls for c in s if c.error is None]
    replies = [reply for stack in stacks for reply in stack.openai.replies]
    quoted = [r.passage for r in replies if r.source == "retrieval" and r.passage]
    return {
        "counts": counts,
        "per_turn": {name: _per_turn(v, committed) for name, v in counts.items()},
        "distinct_queries": distinct,
        "duplicate_retrievals": counts["backend_calls"] - distinct,
        "retrievals_per_distinct_query": (
            round(counts["backend_calls"] / distinct, 3) if distinct else None
        ),
        "backend_p50_ms": round(statistics.median(secs) * 1000, 1) if secs else None,
        "backend_p95_ms": round(float(np.percentile(secs, 95)) * 1000, 1) if secs else None,
        "llm_requests_with_passages": len(quoted),
        "llm_requests_with_empty_retrieval": sum(
            1 for r in replies if r.source == "retrieval-empty"
        ),
        "passages_quoted": sorted({p[:60] for p in quoted}),
    }


def add_rag_rows(table: Table, systems: Mapping[str, Mapping[str, Any]]) -> None:
    """Add the retrieval rows to a bench table (nothing when no system retrieved)."""
    blocks = [s.get("rag") for s in systems.values()]
    if not any(blocks):
        return

    def cell(block: Mapping[str, Any] | None, text: str) -> str:
        return "n/a" if not block else text

    def per_turn(block: Mapping[str, Any] | None, name: str) -> str:
        value = block["per_turn"][name] if block else None
        return "n/a" if value is None else f"{value:.2f}"

    table.add_section()
    table.add_row("retrievals/turn", *(per_turn(b, "retrievals_started") for b in blocks))
    table.add_row("  of which prefetches", *(per_turn(b, "prefetches_started") for b in blocks))
    table.add_row(
        "  contexts served by a prefetch",
        *(cell(b, str(b["counts"]["prefetch_hits"])) if b else "n/a" for b in blocks),
    )
    table.add_row(
        "  joined/reused per turn",
        *(
            cell(b, f"{per_turn(b, 'retrievals_joined')}/{per_turn(b, 'retrievals_reused')}")
            for b in blocks
        ),
    )
    table.add_row(
        "  dropped/timeouts/errors",
        *(
            cell(
                b,
                f"{b['counts']['contexts_dropped']}/{b['counts']['timeouts']}/"
                f"{b['counts']['errors']}",
            )
            if b
            else "n/a"
            for b in blocks
        ),
    )
    table.add_row(
        "  retrievals/distinct query",
        *(
            "n/a"
            if not b or b["retrievals_per_distinct_query"] is None
            else f"{b['retrievals_per_distinct_query']:.2f}"
            for b in blocks
        ),
    )
    table.add_row(
        "  retrieval p50/p95 ms",
        *(
            "n/a"
            if not b or b["backend_p50_ms"] is None
            else f"{b['backend_p50_ms']:.0f}/{b['backend_p95_ms']:.0f}"
            for b in blocks
        ),
    )
    table.add_row(
        "  LLM requests with passages",
        *(cell(b, str(b["llm_requests_with_passages"])) if b else "n/a" for b in blocks),
    )


# ---------------------------------------------------------------------------------------------
# Local store at scale
# ---------------------------------------------------------------------------------------------

_QUERIES = (
    "What does the document say about pricing?",
    "How is the phone menu replaced?",
    "What are the risks of the project?",
    "How long is the free pilot?",
    "Who is the first release for?",
)


def _synthetic_records(n: int, dimension: int, seed: int = 7) -> list[VectorRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        VectorRecord(
            id=f"synthetic-{i:06d}",
            text=f"Synthetic chunk {i}.",
            vector=vectors[i],
            metadata={"source": "synthetic", "chunk": i},
            content_hash=f"h{i}",
        )
        for i in range(n)
    ]


async def local_store_latency(
    embedder: BaseEmbedder | None = None, *, chunks: int = 10_000, queries: int = 25
) -> dict[str, Any]:
    """Query latency of the embedded local store at ``chunks`` chunks: embed + search, p50.

    Reported by the bench, never asserted (the machine may be busy). The chunks are synthetic
    unit vectors (search cost depends on the count and the dimension, not on the text); the
    queries are real questions embedded by the real model, in the calling process, after one
    warm-up query. The store lives in a temporary directory, written once.

    Args:
        embedder: The run's embedder; a new :class:`LocalEmbedder` when None.
        chunks: Store size.
        queries: Measured queries.
    """
    if embedder is None:
        from pipecat_speculative.rag.local_embedder import LocalEmbedder

        embedder = LocalEmbedder()
    await embedder.warmup()
    with tempfile.TemporaryDirectory(prefix="rag-latency-") as tmp:
        store = LocalVectorStore(tmp, model_id=embedder.model_id)
        started = time.monotonic()
        await asyncio.to_thread(store.upsert, _synthetic_records(chunks, embedder.dimension))
        fill_secs = time.monotonic() - started
        await asyncio.to_thread(store.query, await embedder.embed_query("warm up"), top_k=3)
        embed_ms: list[float] = []
        search_ms: list[float] = []
        for i in range(queries):
            t0 = time.perf_counter()
            vector = await embedder.embed_query(_QUERIES[i % len(_QUERIES)])
            t1 = time.perf_counter()
            await asyncio.to_thread(store.query, vector, top_k=3)
            t2 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
    totals = [e + s for e, s in zip(embed_ms, search_ms, strict=True)]
    return {
        "chunks": chunks,
        "queries": queries,
        "embed_p50_ms": round(statistics.median(embed_ms), 2),
        "search_p50_ms": round(statistics.median(search_ms), 2),
        "total_p50_ms": round(statistics.median(totals), 2),
        "total_max_ms": round(max(totals), 2),
        "fill_secs": round(fill_secs, 1),
    }

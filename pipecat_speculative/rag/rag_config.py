"""What a built bot needs to do RAG: the retriever and its tuning."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat_speculative.rag.base_retriever import BaseRetriever
from pipecat_speculative.rag.rag_params import RAGParams

__all__ = ["RAGConfig"]


@dataclass(frozen=True)
class RAGConfig:
    """RAG for :func:`~pipecat_speculative.pipeline_builder.build_bot_pipeline`.

    The ``speculative`` system gets a ``ParallelRAGProcessor`` (and, with ``prefetch``, a
    ``RAGTranscriptTap`` before the user aggregator); ``stock`` and ``eager_flux`` get a
    ``SerialRAGProcessor``, RAG as Pipecat users write it today. Both inject the same way.

    Parameters:
        retriever: Where passages come from (``LocalRetriever`` offline, ``PineconeRetriever``).
        params: Tuning (``top_k``, ``budget_secs``, cache, prefetch).
        prefetch: Start retrieval from the transcript while the user still speaks
            (``speculative`` only).
    """

    retriever: BaseRetriever
    params: RAGParams = field(default_factory=RAGParams)
    prefetch: bool = True

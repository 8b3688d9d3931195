"""Parallel RAG: retrieval that speculation can reuse, with Pinecone and an embedded local store."""

from pipecat_speculative.rag.base_embedder import BaseEmbedder
from pipecat_speculative.rag.base_retriever import BaseRetriever, Passage
from pipecat_speculative.rag.local_embedder import LocalEmbedder
from pipecat_speculative.rag.local_retriever import LocalRetriever
from pipecat_speculative.rag.local_vector_store import LocalVectorStore, VectorRecord
from pipecat_speculative.rag.parallel_rag_processor import ParallelRAGProcessor
from pipecat_speculative.rag.passage_injection import inject_passages, passages_message
from pipecat_speculative.rag.pinecone_retriever import PineconeRetriever
from pipecat_speculative.rag.rag_config import RAGConfig
from pipecat_speculative.rag.rag_params import RAGParams
from pipecat_speculative.rag.rag_transcript_tap import RAGTranscriptTap
from pipecat_speculative.rag.retrieval_cache import RetrievalCache, RetrievalResult
from pipecat_speculative.rag.retrieval_report import (
    RetrievalOutcome,
    RetrievalReport,
    RetrievalSource,
)
from pipecat_speculative.rag.serial_rag_processor import SerialRAGProcessor

__all__ = [
    "BaseEmbedder",
    "BaseRetriever",
    "LocalEmbedder",
    "LocalRetriever",
    "LocalVectorStore",
    "ParallelRAGProcessor",
    "Passage",
    "PineconeRetriever",
    "RAGConfig",
    "RAGParams",
    "RAGTranscriptTap",
    "RetrievalCache",
    "RetrievalOutcome",
    "RetrievalReport",
    "RetrievalResult",
    "RetrievalSource",
    "SerialRAGProcessor",
    "VectorRecord",
    "inject_passages",
    "passages_message",
]

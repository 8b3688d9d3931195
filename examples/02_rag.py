"""Example 2: parallel RAG. A plain Pipecat bot whose answers quote a document.

What changes against ``_plain_bot.py``: a ``ParallelRAGProcessor`` between the user aggregator and
the LLM injects retrieved passages into every inference (retrieval runs concurrently with the
turn and is reused by a speculation), fed early by a ``RAGTranscriptTap``. The retriever is the
embedded MiniLM store filled from the sample document; with ``PINECONE_API_KEY`` and
``PINECONE_INDEX_HOST`` set, Pinecone instead (ingest with ``pipecat-speculative ingest``).

    python examples/02_rag.py -t webrtc     # + pip install 'pipecat-speculative[rag]'
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plain_bot import chain, deepgram_stt, elevenlabs_tts, env, openai_settings, run
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.services.openai.llm import OpenAILLMService

from pipecat_speculative.rag import (
    LocalEmbedder,
    LocalRetriever,
    LocalVectorStore,
    ParallelRAGProcessor,
    PineconeRetriever,
    RAGTranscriptTap,
)
from pipecat_speculative.rag.ingest import ingest_paths

SAMPLE = (
    Path(__file__).resolve().parents[1] / "pipecat_speculative/rag/data/omni_dimension_proposal.md"
)


async def make_retriever(store_dir: str | Path = "out/example_rag_store"):
    embedder = LocalEmbedder()
    if os.getenv("PINECONE_API_KEY") and os.getenv("PINECONE_INDEX_HOST"):
        return PineconeRetriever(
            embedder=embedder,
            host=os.environ["PINECONE_INDEX_HOST"],
            api_key=os.environ["PINECONE_API_KEY"],
        )
    store = LocalVectorStore(store_dir, model_id=embedder.model_id)
    if len(store) == 0:
        await ingest_paths([SAMPLE], target=store, embedder=embedder)
    return LocalRetriever(store, embedder=embedder)


def create_pipeline(transport: Any, retriever: Any):
    stt = deepgram_stt()
    llm = OpenAILLMService(api_key=env("OPENAI_API_KEY"), settings=openai_settings())
    tts = elevenlabs_tts()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    rag = ParallelRAGProcessor(retriever=retriever)  # <- the plugin
    pipeline = chain(
        transport.input(),
        stt,
        RAGTranscriptTap(rag),  # <- the plugin: starts retrieval from the transcript
        aggregators.user(),
        rag,
        llm,
        tts,
        transport.output(),
        aggregators.assistant(),
    )
    return pipeline, []


async def bot(runner_args: RunnerArguments):
    retriever = await make_retriever()
    await run(runner_args, lambda transport: create_pipeline(transport, retriever))


if __name__ == "__main__":
    asyncio.run(make_retriever())  # fill the store once, before the first call
    from pipecat.runner.run import main

    main()

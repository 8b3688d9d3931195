"""The built bot places RAG after the user aggregator: parallel for speculative, serial otherwise."""

from __future__ import annotations

import pytest
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregator
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService

from pipecat_speculative.pipeline_builder import (
    BotPipelineConfig,
    ServiceEndpoints,
    build_bot_pipeline,
)
from pipecat_speculative.rag import (
    ParallelRAGProcessor,
    RAGConfig,
    RAGParams,
    RAGTranscriptTap,
    SerialRAGProcessor,
)
from tests.rag.fakes import FakeRetriever

# Keys only: nothing connects while a pipeline is built.
ENDPOINTS = ServiceEndpoints(
    openai_base_url="http://127.0.0.1:9/v1",
    openai_api_key="k",
    deepgram_api_key="k",
    elevenlabs_api_key="k",
)


def kinds(bot) -> list[type]:
    return [type(p) for p in bot.pipeline.processors]


def position(bot, cls) -> int:
    return next(i for i, p in enumerate(bot.pipeline.processors) if isinstance(p, cls))


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("speculative", ParallelRAGProcessor),
        ("stock", SerialRAGProcessor),
        ("eager_flux", SerialRAGProcessor),
    ],
)
async def test_the_rag_processor_sits_between_the_user_aggregator_and_the_llm(system, expected):
    retriever = FakeRetriever()
    config = BotPipelineConfig(
        system=system,
        endpoints=ENDPOINTS,
        rag=RAGConfig(retriever=retriever, params=RAGParams(top_k=2)),
        warm=False,
    )
    bot = build_bot_pipeline(
        config, transport_input=FrameProcessor(), transport_output=FrameProcessor()
    )
    try:
        assert isinstance(bot.rag, expected)
        aggregator = position(bot, LLMUserAggregator)
        assert position(bot, expected) == aggregator + 1
        assert position(bot, LLMService) == aggregator + 2
        has_tap = RAGTranscriptTap in kinds(bot)
        assert has_tap == (system == "speculative")
        if has_tap:
            assert position(bot, RAGTranscriptTap) == aggregator - 1
    finally:
        await bot.close()


async def test_without_rag_the_pipeline_is_unchanged():
    bot = build_bot_pipeline(
        BotPipelineConfig(system="speculative", endpoints=ENDPOINTS, warm=False),
        transport_input=FrameProcessor(),
        transport_output=FrameProcessor(),
    )
    try:
        assert bot.rag is None
        assert not {ParallelRAGProcessor, SerialRAGProcessor, RAGTranscriptTap} & set(kinds(bot))
    finally:
        await bot.close()

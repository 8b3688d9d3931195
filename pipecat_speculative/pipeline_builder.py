"""The one place a bot pipeline is assembled: the demo, the bench and the ready-made bot share it.

A bot here is the cascade of ``docs/design.md``: STT → user aggregator (VAD + turn strategy) → LLM
→ TTS → output, timed by one :class:`~pipecat_speculative.metrics.TurnTimingObserver`. Three
kinds of turn handling can be built with everything else equal, so they can be compared on the
same audio and the same services:

- ``stock``: Pipecat 1.14 defaults. Silero VAD (``stop_secs`` 0.2) and a 0.6 s speech timeout,
  no speculation, plain ``OpenAILLMService``.
- ``eager_flux``: Pipecat's own speculation. Deepgram Flux with ``enable_eager_end_of_turn``; the
  turn strategies Flux recommends decide (the local VAD only timestamps the end of speech).
- ``speculative``: this plugin. Deepgram Nova + Silero VAD, warm services (OpenAI, Deepgram,
  ElevenLabs connections ready before the first turn; ``warm=False`` leaves them stock), the
  :class:`~pipecat_speculative.turns.speculative_user_turn_stop_strategy.SpeculativeUserTurnStopStrategy`
  (adaptive debounce, free-patience commit) and
  :class:`~pipecat_speculative.services.openai_llm_service.SpeculativeOpenAILLMService`.

The transports are the caller's: a real one in the bot, a scenario microphone and a paced
recorder in the demo and the bench. Services are the real Pipecat services (the real openai,
deepgram-sdk and websockets clients), pointed at whatever :class:`ServiceEndpoints` says: the
loopback stand-ins offline, the real APIs in production.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMContextAggregatorPair,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.transcript_redaction import TranscriptRedaction
from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver
from pipecat_speculative.processors.speculative_output_gate import SpeculativeOutputGate
from pipecat_speculative.profiles import TurnTakingProfile, warm_start
from pipecat_speculative.rag import (
    ParallelRAGProcessor,
    RAGConfig,
    RAGTranscriptTap,
    SerialRAGProcessor,
)
from pipecat_speculative.secret_log_filter import install_secret_log_filter, mask_secret
from pipecat_speculative.services.speculative_elevenlabs_tts_service import (
    SpeculativeElevenLabsTTSService,
)
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.turns.free_patience_user_turn_stop_strategy import (
    FreePatienceUserTurnStopStrategy,
)
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)
from pipecat_speculative.turns.transcription_guard import TranscriptionGuard

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "BotPipeline",
    "BotPipelineConfig",
    "ServiceEndpoints",
    "SystemKind",
    "build_bot_pipeline",
    "warm_llm_available",
]

install_secret_log_filter()

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Answer in short spoken sentences, without lists or "
    "markdown, because your reply is read aloud."
)
"""System prompt of the built bot when the config gives none."""


class SystemKind(StrEnum):
    """How user turns are handled; see the module docstring."""

    STOCK = "stock"
    EAGER_FLUX = "eager_flux"
    SPECULATIVE = "speculative"
    SPECULATIVE_TTS = "speculative_tts"

    @property
    def is_plugin(self) -> bool:
        """Whether this plugin's strategy and services handle the turns."""
        return self in (SystemKind.SPECULATIVE, SystemKind.SPECULATIVE_TTS)


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where the services are and the keys they take.

    Defaults are the real services; :meth:`for_standins` points everything at loopback stand-ins.

    Parameters:
        openai_base_url: OpenAI-compatible base URL (ending in ``/v1``); None is api.openai.com.
        openai_api_key: OpenAI key.
        deepgram_base_url: Deepgram listen v1 base URL (``http(s)://``; the SDK derives ws).
            None is Deepgram's.
        deepgram_flux_url: Deepgram Flux WebSocket URL (``.../v2/listen``); None is Deepgram's.
        deepgram_api_key: Deepgram key.
        elevenlabs_ws_url: ElevenLabs WebSocket base URL; None is ElevenLabs'.
        elevenlabs_api_key: ElevenLabs key.
    """

    openai_base_url: str | None = None
    openai_api_key: str = ""
    deepgram_base_url: str | None = None
    deepgram_flux_url: str | None = None
    deepgram_api_key: str = ""
    elevenlabs_ws_url: str | None = None
    elevenlabs_api_key: str = ""

    @classmethod
    def for_standins(
        cls, *, openai: Any, deepgram: Any, elevenlabs: Any, api_key: str = "standin"
    ) -> ServiceEndpoints:
        """Endpoints of started stand-ins (``OpenAIStandin``, ``DeepgramStandin``, ...).

        Args:
            openai: The OpenAI stand-in.
            deepgram: The Deepgram stand-in (serves both listen v1 and Flux).
            elevenlabs: The ElevenLabs stand-in.
            api_key: The key presented to every stand-in (they accept any non-empty key).
        """
        return cls(
            openai_base_url=f"{openai.base_url}/v1",
            openai_api_key=api_key,
            deepgram_base_url=deepgram.base_url,
            deepgram_flux_url=deepgram.flux_url,
            deepgram_api_key=api_key,
            elevenlabs_ws_url=elevenlabs.ws_url,
            elevenlabs_api_key=api_key,
        )

    def missing_keys(self) -> list[str]:
        """Names of the keys that are empty (a bot built from these endpoints uses all three)."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name.endswith("_api_key") and not getattr(self, f.name).strip()
        ]

    def __repr__(self) -> str:
        """Addresses in full, keys masked: a config logged or shown in a traceback leaks no key."""
        fields = ", ".join(
            f"{f.name}={mask_secret(getattr(self, f.name))!r}"
            if f.name.endswith("_api_key")
            else f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"{type(self).__name__}({fields})"


@dataclass
class BotPipelineConfig:
    """What to build.

    Parameters:
        system: Turn handling (``stock``, ``eager_flux`` or ``speculative``).
        endpoints: Service addresses and keys.
        warm: Warm connections before the first turn (``speculative`` only, when the warm
            services are installed: see :func:`warm_llm_available`); off measures cold turns.
        vad_stop_secs: Silero ``stop_secs``. 0.2 s is Pipecat's default and the reference's.
        stock_speech_timeout_secs: The speech timeout of the ``stock`` system (Pipecat's 0.6 s).
        speculative_params: Bounds of the speculative strategy; its defaults when None.
        commit_floor_secs: The plugin's silence floor before a commit
            (:class:`FreePatienceUserTurnStopStrategy`, Pipecat's 0.6 s speech timeout).
        llm_model: Model name sent to the OpenAI API.
        tts_voice: ElevenLabs voice id.
        sample_rate: Audio sample rate of STT input and TTS output (16 kHz, like the stand-ins
            and telephony-grade transports).
        system_prompt: The LLM's system message.
        session_id: Id written in every turn record; random when None.
        deepgram_tag: Deepgram request tag (the stand-in picks a session's script by it).
        sinks: Turn timing sinks (JSONL, Prometheus, ...).
        log_turns: Log one line per turn from the observer.
        log_transcripts: What that line's bound record keeps of the user's words: ``drop``
            (default), ``hash`` or ``off``.
        user_turn_stop_timeout_secs: The user aggregator's watchdog: a turn with no stop after
            this long is stopped anyway, so a lost commit cannot leave the bot silent.
        rag: Retrieval between the user aggregator and the LLM; None for none. Serial
            (:class:`~pipecat_speculative.rag.SerialRAGProcessor`, every context) for ``stock``
            and ``eager_flux``, parallel
            (:class:`~pipecat_speculative.rag.ParallelRAGProcessor`) for the plugin's systems.
        profile: The user's stored turn-taking profile: the plugin's strategy is warm-started
            from it (:func:`~pipecat_speculative.profiles.warm_start`); None starts cold. The
            Pipecat baselines have nothing to restore and ignore it.
    """

    system: SystemKind | str = SystemKind.SPECULATIVE
    endpoints: ServiceEndpoints = field(default_factory=ServiceEndpoints)
    warm: bool = True
    vad_stop_secs: float = 0.2
    stock_speech_timeout_secs: float = 0.6
    speculative_params: SpeculativeTurnParams | None = None
    commit_floor_secs: float = 0.6
    llm_model: str = "gpt-4o-mini"
    tts_voice: str = "standin"
    sample_rate: int = 16000
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    session_id: str | None = None
    deepgram_tag: str | None = None
    sinks: Sequence[BaseTurnTimingSink] = ()
    log_turns: bool = True
    log_transcripts: TranscriptRedaction | str = TranscriptRedaction.DROP
    user_turn_stop_timeout_secs: float = 5.0
    rag: RAGConfig | None = None
    profile: TurnTakingProfile | None = None

    def __post_init__(self):
        self.system = SystemKind(self.system)


@dataclass
class BotPipeline:
    """The assembled pieces of one bot session.

    Parameters:
        config: What was built.
        pipeline: ``[input, stt, (transcription guard,) (RAG tap,) user aggregator, (RAG,) llm,
            tts, output, assistant aggregator, *after]``; the guard only in the speculative
            system, the RAG processors only with ``config.rag``.
        stt: The STT service.
        user_aggregator: The user aggregator (VAD and turn strategies live in it).
        llm: The LLM service.
        tts: The TTS service.
        assistant_aggregator: The assistant aggregator.
        context: The shared LLM context.
        observer: The turn timing observer: the only stopwatch.
        strategy: The speculative strategy (``speculative`` only).
        warm_available: Whether warm services were found and used (``config.warm``).
        rag: The RAG processor (``config.rag`` only).
    """

    config: BotPipelineConfig
    pipeline: Pipeline
    stt: STTService
    user_aggregator: LLMUserAggregator
    llm: LLMService
    tts: TTSService
    assistant_aggregator: LLMAssistantAggregator
    context: LLMContext
    observer: TurnTimingObserver
    strategy: SpeculativeUserTurnStopStrategy | None = None
    warm_available: bool = False
    rag: ParallelRAGProcessor | SerialRAGProcessor | None = None

    def create_worker(self, **kwargs: Any) -> PipelineWorker:
        """A worker for the pipeline with metrics on and the observer installed.

        Args:
            **kwargs: Extra ``PipelineWorker`` arguments (``idle_timeout_secs``, ...).
        """
        observers = [self.observer, *kwargs.pop("observers", [])]
        kwargs.setdefault("cancel_on_idle_timeout", False)
        return PipelineWorker(
            self.pipeline,
            params=PipelineParams(
                enable_metrics=True,
                enable_usage_metrics=True,
                audio_in_sample_rate=self.config.sample_rate,
                audio_out_sample_rate=self.config.sample_rate,
            ),
            observers=observers,
            **kwargs,
        )

    async def close(self):
        """Close what the services leave open (the OpenAI HTTP pool)."""
        client = getattr(self.llm, "_client", None)
        if client is not None:
            await client.close()


def _warm_kwargs(config: BotPipelineConfig, observer: TurnTimingObserver) -> dict[str, Any]:
    return {"warm": config.warm, "warmup_listener": observer.record_warmup}


def _build_stt(config: BotPipelineConfig, observer: TurnTimingObserver) -> STTService:
    ep = config.endpoints
    if config.system == SystemKind.EAGER_FLUX:
        kwargs: dict[str, Any] = {}
        if ep.deepgram_flux_url:
            kwargs["url"] = ep.deepgram_flux_url
        if config.deepgram_tag:
            kwargs["tag"] = [config.deepgram_tag]
        return DeepgramFluxSTTService(
            api_key=ep.deepgram_api_key,
            sample_rate=config.sample_rate,
            enable_eager_end_of_turn=True,
            **kwargs,
        )
    kwargs = {}
    if ep.deepgram_base_url:
        kwargs["base_url"] = ep.deepgram_base_url
    if config.deepgram_tag:
        kwargs["tag"] = config.deepgram_tag
    if config.system.is_plugin:
        kwargs.update(_warm_kwargs(config, observer))
        return WarmDeepgramSTTService(
            api_key=ep.deepgram_api_key, sample_rate=config.sample_rate, **kwargs
        )
    return DeepgramSTTService(api_key=ep.deepgram_api_key, sample_rate=config.sample_rate, **kwargs)


def warm_llm_available() -> bool:
    """Whether the speculative OpenAI service keeps its connections warm (issue 5's mixin)."""
    return any(c.__name__ == "WarmOpenAILLMMixin" for c in SpeculativeOpenAILLMService.__mro__)


def _build_llm(config: BotPipelineConfig, observer: TurnTimingObserver) -> LLMService:
    ep = config.endpoints
    kwargs: dict[str, Any] = {}
    if ep.openai_base_url:
        kwargs["base_url"] = ep.openai_base_url
    settings = OpenAILLMService.Settings(
        model=config.llm_model, system_instruction=config.system_prompt
    )
    if not config.system.is_plugin:
        # Stock Pipecat: a plain service, connections opened on first use.
        return OpenAILLMService(api_key=ep.openai_api_key, settings=settings, **kwargs)
    if warm_llm_available():
        kwargs.update(_warm_kwargs(config, observer))
    return SpeculativeOpenAILLMService(
        api_key=ep.openai_api_key,
        settings=settings,
        speculative_tts=config.system == SystemKind.SPECULATIVE_TTS,
        **kwargs,
    )


def _build_tts(config: BotPipelineConfig, observer: TurnTimingObserver) -> ElevenLabsTTSService:
    ep = config.endpoints
    kwargs: dict[str, Any] = {}
    if ep.elevenlabs_ws_url:
        kwargs["url"] = ep.elevenlabs_ws_url
    settings = ElevenLabsTTSService.Settings(voice=config.tts_voice)
    if config.system.is_plugin:
        service = (
            SpeculativeElevenLabsTTSService
            if config.system == SystemKind.SPECULATIVE_TTS
            else WarmElevenLabsTTSService
        )
        return service(
            api_key=ep.elevenlabs_api_key,
            sample_rate=config.sample_rate,
            settings=settings,
            **kwargs,
            **_warm_kwargs(config, observer),
        )
    return ElevenLabsTTSService(
        api_key=ep.elevenlabs_api_key, sample_rate=config.sample_rate, settings=settings, **kwargs
    )


def _user_params(
    config: BotPipelineConfig, strategy: SpeculativeUserTurnStopStrategy | None
) -> LLMUserAggregatorParams:
    vad = SileroVADAnalyzer(params=VADParams(stop_secs=config.vad_stop_secs))
    if config.system == SystemKind.EAGER_FLUX:
        # No user strategies: the ones Flux recommends (eager end of turn) apply. The VAD only
        # timestamps the real end of speech for the observer.
        return LLMUserAggregatorParams(
            vad_analyzer=vad, user_turn_stop_timeout=config.user_turn_stop_timeout_secs
        )
    if config.system == SystemKind.STOCK:
        stop: list[Any] = [
            SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=config.stock_speech_timeout_secs)
        ]
    else:
        assert strategy is not None
        stop = [strategy]
    return LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(stop=stop),
        vad_analyzer=vad,
        user_turn_stop_timeout=config.user_turn_stop_timeout_secs,
    )


def _build_rag(
    config: BotPipelineConfig,
) -> tuple[list[FrameProcessor], ParallelRAGProcessor | SerialRAGProcessor | None]:
    """The processors before the user aggregator (a prefetch tap) and the RAG processor.

    The two Pipecat baselines retrieve serially, as their users write it today; every other
    system is the plugin's and gets the parallel processor, so a system added later is
    compared with the plugin's retrieval without touching this.
    """
    rag = config.rag
    if rag is None:
        return [], None
    if not config.system.is_plugin:
        # Every context, speculative or not, as a user's processor does: with eager Flux the
        # answer is the eager (speculative) context itself (a confirming end of turn runs no
        # new inference), so a processor that let it pass would never retrieve.
        return [], SerialRAGProcessor(
            retriever=rag.retriever, params=rag.params, retrieve_speculative=True
        )
    parallel = ParallelRAGProcessor(retriever=rag.retriever, params=rag.params)
    return ([RAGTranscriptTap(parallel)] if rag.prefetch else []), parallel


def build_bot_pipeline(
    config: BotPipelineConfig,
    *,
    transport_input: FrameProcessor,
    transport_output: FrameProcessor,
    after_output: Sequence[FrameProcessor] = (),
    stt: STTService | None = None,
    tts: TTSService | None = None,
) -> BotPipeline:
    """Assemble a bot pipeline.

    Args:
        config: What to build.
        transport_input: The input transport (microphone side) the caller owns.
        transport_output: The output transport (speaker side) the caller owns.
        after_output: Processors placed right after the output (an ``AudioBufferProcessor``
            records both sides there).
        stt: An STT service to use instead of the Deepgram one the config describes (the
            ready-made bot's offline mode passes local Whisper): speculation works with any STT.
        tts: A TTS service to use instead of the ElevenLabs one (offline: local Piper).

    Returns:
        The pieces; run ``result.create_worker()`` and call ``result.close()`` after it ended.

    Raises:
        ValueError: If a service key is missing. Every service would accept an empty key
            and fail only at the user's first turn; a configuration error belongs at start.
    """
    # Only the services built from the endpoints need their keys: a passed-in STT or TTS has its own.
    unused = {"deepgram_api_key"} if stt is not None else set()
    unused |= {"elevenlabs_api_key"} if tts is not None else set()
    if missing := [k for k in config.endpoints.missing_keys() if k not in unused]:
        raise ValueError(
            f"missing API key(s): {', '.join(missing)}; set them in ServiceEndpoints "
            "(ServiceEndpoints.for_standins() for the offline stand-ins)"
        )
    started = time.monotonic()
    strategy: SpeculativeUserTurnStopStrategy | None = None
    if config.system.is_plugin:
        params = config.speculative_params or SpeculativeTurnParams()
        if config.system == SystemKind.SPECULATIVE_TTS:
            # The held answer is ready when its first audio is: the commit then plays it at once.
            params = replace(params, ready_stage=SpeculationStage.FIRST_AUDIO)
        strategy = SpeculativeUserTurnStopStrategy(
            params=params,
            commit_strategy=FreePatienceUserTurnStopStrategy(floor_secs=config.commit_floor_secs),
        )
        if config.profile is not None:
            warm_start(strategy, config.profile)

    observer = TurnTimingObserver(
        sinks=list(config.sinks),
        log=config.log_turns,
        session_id=config.session_id,
        transcripts=config.log_transcripts,
    )
    stt = stt if stt is not None else _build_stt(config, observer)
    llm = _build_llm(config, observer)
    tts = tts if tts is not None else _build_tts(config, observer)
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(context, user_params=_user_params(config, strategy))
    user_aggregator, assistant_aggregator = aggregators.user(), aggregators.assistant()

    if strategy is not None:
        # The strategy measures readiness itself, from the LLM's progress reports.
        observer.attach(strategy)

    # Warm connections are the plugin's (issue 5): only the speculative system gets them, and
    # only once the warm services exist; stock and eager_flux stay Pipecat's defaults.
    warm_available = config.warm and config.system.is_plugin and warm_llm_available()

    before_aggregator, rag = _build_rag(config)
    pipeline = Pipeline(
        [
            transport_input,
            stt,
            # The plugin's: a final transcript queued at the turn-start interruption is kept.
            *([TranscriptionGuard()] if strategy is not None else []),
            *before_aggregator,
            user_aggregator,
            *([rag] if rag is not None else []),
            llm,
            tts,
            # Speculative TTS: the synthesized answer is held here until the commit.
            *([SpeculativeOutputGate()] if config.system == SystemKind.SPECULATIVE_TTS else []),
            transport_output,
            assistant_aggregator,
            *after_output,
        ]
    )
    logger.debug(
        f"built a {config.system.value} bot pipeline in "
        f"{(time.monotonic() - started) * 1000:.0f} ms (warm {config.warm}, "
        f"warm services {'found' if warm_available else 'absent'})"
    )
    return BotPipeline(
        config=config,
        pipeline=pipeline,
        stt=stt,
        user_aggregator=user_aggregator,
        llm=llm,
        tts=tts,
        assistant_aggregator=assistant_aggregator,
        context=context,
        observer=observer,
        strategy=strategy,
        warm_available=warm_available,
        rag=rag,
    )

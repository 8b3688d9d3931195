"""Pipecat services ready for speculation: queued-withdrawal handling and warm connections."""

from pipecat_speculative.services.audio_replay_buffer import AudioReplayBuffer
from pipecat_speculative.services.elevenlabs_http_session import ElevenLabsHttpSession
from pipecat_speculative.services.llm_stall_timeout import LLMStallTimeoutMixin
from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.warm_connection_transport import (
    WarmConnectionTransport,
    WarmTransportStats,
)
from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService
from pipecat_speculative.services.warm_openai_llm_mixin import WarmOpenAILLMMixin
from pipecat_speculative.services.warmup_report import (
    WarmupKind,
    WarmupListener,
    WarmupRecorder,
    WarmupReport,
)

__all__ = [
    "AudioReplayBuffer",
    "ElevenLabsHttpSession",
    "LLMStallTimeoutMixin",
    "SpeculationAwareLLMMixin",
    "SpeculativeOpenAILLMService",
    "WarmConnectionTransport",
    "WarmDeepgramSTTService",
    "WarmElevenLabsTTSService",
    "WarmOpenAILLMMixin",
    "WarmTransportStats",
    "WarmupKind",
    "WarmupListener",
    "WarmupRecorder",
    "WarmupReport",
]

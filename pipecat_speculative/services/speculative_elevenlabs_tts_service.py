"""ElevenLabs WebSocket TTS for speculative TTS: warm, and it stops a withdrawn answer at once."""

from __future__ import annotations

from pipecat_speculative.services.speculative_tts_mixin import SpeculativeTTSMixin
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService

__all__ = ["SpeculativeElevenLabsTTSService"]


class SpeculativeElevenLabsTTSService(SpeculativeTTSMixin, WarmElevenLabsTTSService):
    """:class:`WarmElevenLabsTTSService` that closes a withdrawn speculation's context at once.

    Use it with ``SpeculativeOpenAILLMService(speculative_tts=True)`` and a
    :class:`~pipecat_speculative.processors.speculative_output_gate.SpeculativeOutputGate` right
    after it, and ``SpeculativeTurnParams(ready_stage=SpeculationStage.FIRST_AUDIO)``.
    """

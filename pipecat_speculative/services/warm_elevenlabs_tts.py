"""Former module path of :class:`WarmElevenLabsTTSService`, kept so existing imports work.

New code imports it from :mod:`pipecat_speculative.services` or
:mod:`pipecat_speculative.services.warm_elevenlabs_tts_service`.
"""

from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService

__all__ = ["WarmElevenLabsTTSService"]

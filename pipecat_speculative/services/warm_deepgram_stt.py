"""Former module path of :class:`WarmDeepgramSTTService`, kept so existing imports work.

New code imports it from :mod:`pipecat_speculative.services` or
:mod:`pipecat_speculative.services.warm_deepgram_stt_service`.
"""

from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService

__all__ = ["WarmDeepgramSTTService"]

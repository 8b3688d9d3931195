"""Former module path of :class:`SpeculativeOpenAILLMService`, kept so existing imports work.

New code imports it from :mod:`pipecat_speculative.services` or
:mod:`pipecat_speculative.services.speculative_openai_llm_service`.
"""

from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService

__all__ = ["SpeculativeOpenAILLMService"]

"""OpenAI (and OpenAI-compatible) LLM service ready for speculation."""

from __future__ import annotations

from pipecat.services.openai.llm import OpenAILLMService

from pipecat_speculative.services.llm_stall_timeout import LLMStallTimeoutMixin
from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin
from pipecat_speculative.services.warm_openai_llm_mixin import WarmOpenAILLMMixin

__all__ = ["SpeculativeOpenAILLMService"]


class SpeculativeOpenAILLMService(
    SpeculationAwareLLMMixin, LLMStallTimeoutMixin, WarmOpenAILLMMixin, OpenAILLMService
):
    """``OpenAILLMService`` that also stops a speculation withdrawn while its context was queued.

    Its connections are kept warm (:class:`WarmOpenAILLMMixin`): warmed before the first turn,
    and a spare kept open so the inference after a withdrawn speculation never opens a cold one.
    ``warm=False`` turns that off; see the mixin for the other parameters.

    A completion that goes silent for ``stall_timeout_secs`` (10 s; before its first chunk or
    mid-stream) is abandoned with Pipecat's "LLM completion timeout" error
    (:class:`LLMStallTimeoutMixin`) instead of waiting out the client's 600 s read timeout.
    """

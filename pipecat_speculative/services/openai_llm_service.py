"""OpenAI (and OpenAI-compatible) LLM service ready for speculation."""

from __future__ import annotations

from pipecat.services.openai.llm import OpenAILLMService

from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin

__all__ = ["SpeculativeOpenAILLMService"]


class SpeculativeOpenAILLMService(SpeculationAwareLLMMixin, OpenAILLMService):
    """``OpenAILLMService`` that also stops a speculation withdrawn while its context was queued."""

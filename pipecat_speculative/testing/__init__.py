"""Helpers for testing your own Pipecat bot with this plugin, offline and deterministic.

- :class:`Timeline`: script a user (speech, pauses, late transcripts, coughs) and get the frames an
  STT + VAD would produce, for ``pipecat.tests.utils.run_test``.
- :class:`FakeLLMService` / :class:`SpeculationAwareFakeLLMService`: LLM services with Pipecat's
  real ``LLMService`` machinery (speculation gate, tool calls, cancellation) and a scripted answer.
- The stand-in fixtures (``openai_standin``, ``standin_openai_llm``, ``elevenlabs_standin``, ...)
  are registered with pytest automatically when the package is installed
  (:mod:`pipecat_speculative.standins.pytest_plugin`).

See ``docs/testing.md`` for an example test; ``tests/testing/test_user_example.py`` runs it.
"""

from pipecat_speculative.testing.fakes import (
    FakeLLMService,
    SpeculationAwareFakeLLMService,
    fake_llm_settings,
    last_user_text,
)
from pipecat_speculative.testing.timeline import (
    STOP_SECS,
    Segment,
    Timeline,
    final_transcription,
)

__all__ = [
    "FakeLLMService",
    "STOP_SECS",
    "Segment",
    "SpeculationAwareFakeLLMService",
    "Timeline",
    "fake_llm_settings",
    "final_transcription",
    "last_user_text",
]

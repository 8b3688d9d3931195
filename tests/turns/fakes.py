"""Moved to :mod:`pipecat_speculative.testing.fakes` (shipped for users); kept for old imports.

Import from ``pipecat_speculative.testing`` in new tests; remove this file once nothing imports it.
"""

from pipecat_speculative.testing.fakes import (
    FakeLLMService,
    SpeculationAwareFakeLLMService,
    last_user_text,
)

__all__ = ["FakeLLMService", "SpeculationAwareFakeLLMService", "last_user_text"]

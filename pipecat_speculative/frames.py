"""Frames the plugin adds to Pipecat's: how far a held speculative answer has come."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipecat.frames.frames import SystemFrame

__all__ = ["SPECULATIVE_RESPONSE_KEY", "SpeculationProgressFrame", "SpeculationStage"]

SPECULATIVE_RESPONSE_KEY = "pipecat_speculative.speculative_response"
"""``frame.metadata`` key set on the ``LLMFullResponseStartFrame`` of a speculative response that
the LLM let through to a speculative TTS; its value is the user text the response answers. The
:class:`~pipecat_speculative.processors.speculative_output_gate.SpeculativeOutputGate` after the
TTS holds such a response until its turn is committed."""


class SpeculationStage(StrEnum):
    """How far the answer of a speculative inference has come while it is held.

    The stages are reached in this order; each is reported at most once per inference.
    """

    STARTED = "started"
    """The speculative inference started at the LLM (it was not dropped while queued)."""
    FIRST_SENTENCE = "first_sentence"
    """The held response has its first complete sentence (or ended before one): releasing it
    now lets the TTS start at once."""
    FIRST_AUDIO = "first_audio"
    """The held response's first audio is synthesized (speculative TTS): releasing it now plays
    it at once."""


@dataclass
class SpeculationProgressFrame(SystemFrame):
    """Pushed upstream by a speculation-aware service when a held answer reaches a stage.

    The speculative turn strategy (in the user aggregator, upstream) commits a turn at the moment
    the held answer is ready, which costs no latency at all: the answer could not have played
    any sooner. A system frame so that it overtakes queued data frames.

    Parameters:
        stage: The stage reached.
        user_text: The user text the speculative inference answers (the last user message of its
            context), so the strategy can tell a stage of the speculation in flight from one of a
            speculation it has already withdrawn. Kept in memory only; never logged.
    """

    stage: SpeculationStage
    user_text: str

    def __str__(self):
        return f"{self.name}(stage: {self.stage.value})"

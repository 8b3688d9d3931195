"""Fake LLM services with the full ``LLMService`` interface (the gate, tool calls, cancellation).

Why not a mock: the speculation gate, function calling and interruption handling live in
Pipecat's ``LLMService`` base class. A fake that subclasses it keeps all of that real and replaces
only the network, so a test of a bot's turn handling exercises the same code as production.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallFromLLM, LLMService
from pipecat.services.settings import LLMSettings
from pipecat.utils.errors import ErrorCategory

from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin

__all__ = [
    "FakeLLMService",
    "SpeculationAwareFakeLLMService",
    "fake_llm_settings",
    "last_user_text",
]


def fake_llm_settings(model: str, **overrides: Any) -> LLMSettings:
    """Complete ``LLMSettings`` for a fake service: every field set, as a real service's are."""
    values: dict[str, Any] = {
        "model": model,
        "system_instruction": None,
        "temperature": None,
        "max_tokens": None,
        "top_p": None,
        "top_k": None,
        "frequency_penalty": None,
        "presence_penalty": None,
        "seed": None,
        "filter_incomplete_user_turns": None,
        "user_turn_completion_config": None,
    }
    values.update(overrides)
    return LLMSettings(**values)


def last_user_text(frame: LLMContextFrame) -> str:
    """The content of the last user message in the frame's context ("" when none)."""
    for message in reversed(frame.context.messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content"))
    return ""


class FakeLLMService(LLMService):
    """Answers "ANSWER: <last user text>" in two pieces, with a delay before each piece.

    The delay is awaited inside process_frame, like a real streaming service, so a queued context
    waits behind a running one and a cancellation stops the stream mid-way.

    Args:
        piece_delay: Seconds before each piece (a slow LLM makes withdrawals observable).
        tool_word: When the user text contains it, call the ``lookup`` function instead (once
            the context holds the calls' results, the inference after them answers).
        tool_calls: How many ``lookup`` calls such an inference makes at once (parallel calls).
        failures: Inference number (1 for the first started) -> pieces pushed before it fails
            with an ``ErrorFrame`` (0: before any text), then ends its response as a real
            service does after an error.
        **kwargs: ``LLMService`` options.

    Attributes:
        started: ``(user text, speculative)`` for every inference started.
        finished: User texts whose answer ran to the end.
        failed: ``(user text, speculative)`` for every inference that failed.
        tool_calls_run: Function calls made.
    """

    def __init__(
        self,
        *,
        piece_delay: float = 0.05,
        tool_word: str | None = None,
        tool_calls: int = 1,
        failures: dict[int, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            settings=fake_llm_settings("fake"),
            **kwargs,
        )
        self.piece_delay = piece_delay
        self.tool_word = tool_word
        self.tool_calls = tool_calls
        self.failures = dict(failures or {})
        self.started: list[tuple[str, bool]] = []
        self.finished: list[str] = []
        self.failed: list[tuple[str, bool]] = []
        self.tool_calls_run = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Answer contexts; pass everything else on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._answer(frame)
        elif not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)

    async def _answer(self, frame: LLMContextFrame):
        text = last_user_text(frame)
        self.started.append((text, frame.speculation))
        number = len(self.started)
        await self.push_frame(LLMFullResponseStartFrame())
        messages = frame.context.messages
        asked = bool(messages) and isinstance(messages[-1], dict)
        asked = asked and messages[-1].get("role") == "user"
        if self.tool_word and self.tool_word in text and asked:
            await asyncio.sleep(self.piece_delay)
            calls = [
                FunctionCallFromLLM(
                    function_name="lookup",
                    tool_call_id=f"call-{number}" + (f"-{i}" if i else ""),
                    arguments={},
                    context=frame.context,
                )
                for i in range(self.tool_calls)
            ]
            self.tool_calls_run += len(calls)
            await self.run_function_calls(calls)
            await self.push_frame(LLMFullResponseEndFrame())
            return
        for i, piece in enumerate(("ANSWER: ", text)):
            await asyncio.sleep(self.piece_delay)
            if self.failures.get(number) == i:
                self.failed.append((text, frame.speculation))
                await self.push_error("fake LLM failure", category=ErrorCategory.SERVER)
                await self.push_frame(LLMFullResponseEndFrame())
                return
            await self.push_frame(LLMTextFrame(piece))
        await self.push_frame(LLMFullResponseEndFrame())
        self.finished.append(text)


class SpeculationAwareFakeLLMService(SpeculationAwareLLMMixin, FakeLLMService):
    """The fake with this plugin's queued-withdrawal handling."""

"""A fake LLM service with the full LLMService interface (the gate, tool calls, cancellation)."""

from __future__ import annotations

import asyncio

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

from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin


def last_user_text(frame: LLMContextFrame) -> str:
    for message in reversed(frame.context.messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content"))
    return ""


class FakeLLMService(LLMService):
    """Answers "ANSWER: <last user text>" in two pieces, with a delay before each piece.

    The delay is awaited inside process_frame, like a real streaming service, so a queued context
    waits behind a running one and a cancellation stops the stream mid-way.
    """

    def __init__(self, *, piece_delay: float = 0.05, tool_word: str | None = None, **kwargs):
        super().__init__(
            settings=LLMSettings(
                model="fake",
                system_instruction=None,
                temperature=None,
                max_tokens=None,
                top_p=None,
                top_k=None,
                frequency_penalty=None,
                presence_penalty=None,
                seed=None,
                filter_incomplete_user_turns=None,
                user_turn_completion_config=None,
            ),
            **kwargs,
        )
        self.piece_delay = piece_delay
        self.tool_word = tool_word
        self.started: list[tuple[str, bool]] = []
        self.finished: list[str] = []
        self.tool_calls_run = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._answer(frame)
        elif not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)

    async def _answer(self, frame: LLMContextFrame):
        text = last_user_text(frame)
        self.started.append((text, frame.speculation))
        await self.push_frame(LLMFullResponseStartFrame())
        if self.tool_word and self.tool_word in text:
            await asyncio.sleep(self.piece_delay)
            calls = [
                FunctionCallFromLLM(
                    function_name="lookup",
                    tool_call_id=f"call-{len(self.started)}",
                    arguments={},
                    context=frame.context,
                )
            ]
            await self.run_function_calls(calls)
            await self.push_frame(LLMFullResponseEndFrame())
            return
        for piece in ("ANSWER: ", text):
            await asyncio.sleep(self.piece_delay)
            await self.push_frame(LLMTextFrame(piece))
        await self.push_frame(LLMFullResponseEndFrame())
        self.finished.append(text)


class SpeculationAwareFakeLLMService(SpeculationAwareLLMMixin, FakeLLMService):
    """The fake with this plugin's queued-withdrawal handling."""

"""Test doubles for the turn timing tests: a scripted LLM, a TTS, an output and a strategy.

The LLM behaves like Pipecat's OpenAI service where the observer cares: TTFB measured from the
start of processing, text streamed through ``push_frame`` (so the speculation gate holds it),
usage reported from a ``finally`` (so a cancelled inference still reports), and cancellation on
``EagerEndOfTurnCancelFrame`` through the real ``LLMService`` path (which emits the bogus TTFB).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.metrics.metrics import LLMTokenUsage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.base_object import BaseObject

from pipecat_speculative.testing.fakes import fake_llm_settings
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)


@dataclass
class LLMScript:
    """How the fake LLM answers one context."""

    ttfb_secs: float = 0.05
    chunks: tuple[str, ...] = ("Sure. ", "Here it ", "is.")
    chunk_gap_secs: float = 0.01
    prompt_tokens: int = 100
    completion_tokens: int = 7


class FakeLLM(LLMService):
    """An LLM service with scripted timing; answers contexts in order from ``scripts``."""

    def __init__(self, scripts: list[LLMScript] | None = None, **kwargs):
        super().__init__(
            settings=fake_llm_settings("fake-llm", filter_incomplete_user_turns=False),
            **kwargs,
        )
        self._scripts = list(scripts or [])

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            script = self._scripts.pop(0) if self._scripts else LLMScript()
            await self.push_frame(LLMFullResponseStartFrame())
            await self.start_ttfb_metrics()
            try:
                await asyncio.sleep(script.ttfb_secs)
                await self.stop_ttfb_metrics()
                for chunk in script.chunks:
                    await self.push_frame(LLMTextFrame(chunk))
                    await asyncio.sleep(script.chunk_gap_secs)
            finally:
                await self.start_llm_usage_metrics(
                    LLMTokenUsage(
                        prompt_tokens=script.prompt_tokens,
                        completion_tokens=script.completion_tokens,
                        total_tokens=script.prompt_tokens + script.completion_tokens,
                    )
                )
                await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class FakeTTS(TTSService):
    """A sentence-aggregating TTS that answers each sentence with 0.2 s of 16 kHz audio."""

    def __init__(self, *, first_audio_secs: float = 0.03, **kwargs):
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            stop_frame_timeout_s=0.3,
            sample_rate=16000,
            settings=TTSSettings(model="fake-tts", voice="fake", language=None),
            **kwargs,
        )
        self._first_audio_secs = first_audio_secs

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str):
        await self.start_tts_usage_metrics(text)
        await asyncio.sleep(self._first_audio_secs)
        yield TTSAudioRawFrame(
            audio=b"\x10\x00" * 3200, sample_rate=16000, num_channels=1, context_id=context_id
        )


class FakeOutput(FrameProcessor):
    """Stands for the output transport: passes everything on."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class FakeStrategy(BaseObject):
    """Carries the speculative strategy's event interface, and nothing else."""

    EVENTS = SpeculativeUserTurnStopStrategy.EVENTS

    def __init__(self):
        super().__init__()
        for name in self.EVENTS:
            self._register_event_handler(name, sync=True)

    async def emit(self, event: str, payload: object):
        await self._call_event_handler(event, payload)


@dataclass
class Recorded:
    """What an observer's events delivered."""

    records: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    readiness: list = field(default_factory=list)


def record_events(observer) -> Recorded:
    recorded = Recorded()

    @observer.event_handler("on_turn_completed")
    def _turn(obs, record):
        recorded.records.append(record)

    @observer.event_handler("on_alert")
    def _alert(obs, alert):
        recorded.alerts.append(alert)

    @observer.event_handler("on_answer_readiness")
    def _ready(obs, secs):
        recorded.readiness.append(secs)

    return recorded

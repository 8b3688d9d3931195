"""Scripted timelines: feed an observer ``FramePushed`` events at exact times.

Every push carries its scripted timestamp (ms) on the pipeline clock, and the injected clock reads
the same time, so the observer's arithmetic can be checked to the millisecond without sleeping.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, LLMContextFrame, VADUserStoppedSpeakingFrame
from pipecat.observers.base_observer import FrameProcessed, FramePushed
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_speculative.metrics import TurnTimingObserver

from .fakes import FakeLLM, FakeOutput, FakeTTS

WALL_OFFSET = 1_800_000_000.0
"""Wall-clock time of pipeline time 0 in the scripted world."""


class ScriptedClock:
    """A clock that reads whatever the script says it is (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_OFFSET + self.now


class Script:
    """Pushes frames into an observer as a pipeline would, at scripted times."""

    def __init__(self, **observer_kwargs):
        self.clock = ScriptedClock()
        self.source = FrameProcessor(name="source")
        self.aggregator = FrameProcessor(name="aggregator")
        self.llm = FakeLLM(name="llm")
        self.tts = FakeTTS(name="tts")
        self.output = FakeOutput(name="output")
        observer_kwargs.setdefault("log", False)
        self.observer = TurnTimingObserver(
            clock=self.clock,
            wall_clock=self.clock.wall,
            output_types=(FakeOutput,),
            session_id="scripted",
            **observer_kwargs,
        )

    def at(self, ms: float):
        self.clock.now = ms / 1000.0

    async def push(
        self,
        ms: float,
        frame: Frame,
        *,
        source: FrameProcessor | None = None,
        destination: FrameProcessor | None = None,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        first_push: bool = True,
    ):
        self.at(ms)
        await self.observer.on_push_frame(
            FramePushed(
                source=source or self.source,
                destination=destination or self.aggregator,
                frame=frame,
                direction=direction,
                timestamp=int(round(ms * 1_000_000)),
                first_push=first_push,
            )
        )

    async def processed(self, ms: float, frame: Frame, processor: FrameProcessor | None = None):
        self.at(ms)
        await self.observer.on_process_frame(
            FrameProcessed(
                processor=processor or self.llm,
                frame=frame,
                direction=FrameDirection.DOWNSTREAM,
                timestamp=int(round(ms * 1_000_000)),
            )
        )

    async def vad_stop(self, ms: float, *, stop_secs: float = 0.2, seen_ms: float | None = None):
        """A VAD stop decided at ``ms`` (its wall timestamp), observed at ``seen_ms``."""
        frame = VADUserStoppedSpeakingFrame(stop_secs=stop_secs, timestamp=WALL_OFFSET + ms / 1000)
        await self.push(seen_ms if seen_ms is not None else ms, frame)

    @staticmethod
    def context(text: str, *, speculation: bool = False) -> LLMContextFrame:
        return LLMContextFrame(
            context=LLMContext(messages=[{"role": "user", "content": text}]),
            speculation=speculation,
        )

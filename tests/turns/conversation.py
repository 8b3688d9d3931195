"""A whole conversation pipeline on virtual time, and the design's invariants checked on it.

The pipeline is a bot's, less the network: transcription guard, the user and assistant
aggregators (Pipecat's pair, sharing one ``LLMContext``), a fake LLM with Pipecat's real
``LLMService`` machinery, optionally a TTS and an output transport, and a tap just before the
assistant aggregator that records what reached it. Tests run it with Pipecat's ``run_test`` on an
event loop whose clock jumps to the next timer when nothing is ready (looptime), and the strategy
reads that clock, so a scripted second costs nothing and a turn's timing is exact.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative.testing import Timeline
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)
from pipecat_speculative.turns.transcription_guard import TranscriptionGuard

EVENTS = SpeculativeUserTurnStopStrategy.EVENTS


def loop_clock() -> float:
    """The running event loop's clock (virtual under looptime): the strategy's clock in tests."""
    return asyncio.get_running_loop().time()


def answer_to(text: str) -> str:
    """What the fake LLM answers to ``text``."""
    return f"ANSWER: {text}"


class Tap(FrameProcessor):
    """Passes everything on and keeps the frames that went downstream through it."""

    def __init__(self):
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append(frame)
        await self.push_frame(frame, direction)


class Conversation:
    """guard → user aggregator → LLM → (TTS, output …) → tap → assistant aggregator."""

    def __init__(
        self,
        *,
        llm,
        strategies: UserTurnStrategies,
        after_llm: Sequence[FrameProcessor] = (),
        stop_timeout: float = 5.0,
    ):
        self.context = LLMContext()
        # Pipecat's empty-turn recovery runs the LLM on a developer prompt after a wordless turn
        # that interrupted the bot; the fake would answer it like the last user turn.
        pair = LLMContextAggregatorPair(
            self.context,
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=strategies,
                user_turn_stop_timeout=stop_timeout,
                empty_user_turn=None,
            ),
        )
        self.user, self.assistant = pair.user(), pair.assistant()
        self.strategy = strategies.stop[0]
        self.events: list[tuple[str, object]] = []
        for name in EVENTS:
            self.strategy.add_event_handler(name, self._recorder(name))
        self.llm = llm
        self.tap = Tap()
        self.pipeline = Pipeline(
            [TranscriptionGuard(), self.user, llm, *after_llm, self.tap, self.assistant]
        )

    def _recorder(self, name):
        async def record(_strategy, item):
            self.events.append((name, item))

        return record

    async def run(self, frames: list[Frame], **kw) -> list[Frame]:
        down, _ = await run_test(self.pipeline, frames_to_send=frames, **kw)
        return list(down)

    def names(self, name: str) -> list:
        return [item for n, item in self.events if n == name]

    @property
    def committed(self) -> list[str]:
        return [c.text for c in self.names("on_user_turn_committed")]

    @property
    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.context.messages if m.get("role") == "user"]

    @property
    def assistant_texts(self) -> list[str]:
        return [
            m["content"]
            for m in self.context.messages
            if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        ]


# ---------------------------------------------------------------- scripted users


def timeline_of(segments: list[dict]) -> Timeline:
    """A Timeline from hypothesis-drawn segment dicts (``words`` plus ``Segment`` fields)."""
    timeline = Timeline()
    for seg in segments:
        seg = dict(seg)
        timeline.say(" ".join(seg.pop("words")), **seg)
    timeline.segments[-1].pause_after_secs = 0.0
    return timeline


# ---------------------------------------------------------------- what was heard


@dataclass
class Heard:
    """One response as it reached the listener: its text and whether it ran to its end."""

    text: str
    completed: bool


def heard_responses(frames: list[Frame]) -> list[Heard]:
    """The responses in LLM frames that passed a point, in order (empty ones left out).

    A response with no text (a tool call, a failure before any text) says nothing to the user.
    """
    out: list[Heard] = []
    for f in frames:
        if isinstance(f, LLMFullResponseStartFrame):
            out.append(Heard("", False))
        elif isinstance(f, LLMTextFrame):
            assert out and not out[-1].completed, "text outside a response"
            out[-1].text += f.text
        elif isinstance(f, LLMFullResponseEndFrame):
            assert out and not out[-1].completed, "end without a start"
            out[-1].completed = True
    return [h for h in out if h.text]


@dataclass
class Expectations:
    """What the fake services did that excuses an answer cut short (failures)."""

    failed_texts: set[str] = field(default_factory=set)


def match_heard_to_turns(
    heard: list[Heard], turns: list[str], *, failed: set[str] = frozenset()
) -> list[int]:
    """Map each heard response, in order, to the user turn it answers; no turn twice.

    A completed response must be the turn's whole answer, unless an inference for that text
    failed (the service ends its response after the error); any response may be cut short (a
    barge-in), so it must then be a prefix of the answer. Greedy in order: a cut-short
    "ANSWER: want for" may belong to "want for want book".
    """
    positions: list[int] = []
    position = 0
    for h in heard:
        while position < len(turns) and not _answers(h, turns[position], failed):
            position += 1
        assert position < len(turns), ("an answer to no turn, or a turn answered twice", heard)
        positions.append(position)
        position += 1
    return positions


def _answers(h: Heard, turn: str, failed: set[str]) -> bool:
    expected = answer_to(turn)
    if h.completed and turn not in failed:
        return h.text == expected
    return expected.startswith(h.text)


def assert_context_answers_follow_their_turns(conv: Conversation):
    """Every assistant message answers the user message just before it, whole or cut short."""
    last_user: str | None = None
    answered = False
    for m in conv.context.messages:
        role = m.get("role")
        if role == "user":
            last_user, answered = m["content"], False
        elif role == "assistant" and isinstance(m.get("content"), str):
            assert last_user is not None, ("an answer before any user turn", conv.context.messages)
            assert not answered, ("two answers to one user turn", conv.context.messages)
            assert answer_to(last_user).startswith(m["content"]), (m, last_user)
            answered = True


def assert_context_is_the_conversation(conv: Conversation, heard_texts: list[str]):
    """The context holds committed user turns and, after each, at most the answer heard to it.

    Every assistant message answers the user message just before it (whole or cut short), and the
    assistant messages are exactly the heard answers, in order.
    """
    assert_context_answers_follow_their_turns(conv)
    assert conv.assistant_texts == [t.strip() for t in heard_texts if t.strip()], (
        conv.assistant_texts,
        heard_texts,
    )


def assert_speculations_resolved(conv: Conversation):
    """started = adopted + withdrawn, nothing open, each record resolved once."""
    planner = conv.strategy.planner
    assert planner.speculation is None
    assert planner.started == planner.adopted + sum(planner.withdrawn.values())
    started = [r.id for r in conv.names("on_speculation_started")]
    resolved = [r.id for r in conv.names("on_speculation_withdrawn")] + [
        r.id for r in conv.names("on_speculation_adopted")
    ]
    assert len(started) == planner.started
    assert Counter(resolved) == Counter(started), (started, resolved)


def assert_withdrawn_answers_unheard(conv: Conversation, heard_texts: list[str]):
    """No answer to a withdrawn speculation's text was heard, unless that text was committed."""
    answered = set(conv.user_messages)
    for record in conv.names("on_speculation_withdrawn"):
        if record.text not in answered:
            assert all(t != answer_to(record.text) for t in heard_texts), record

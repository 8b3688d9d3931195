"""A scripted retriever and an LLM fake that records what each inference was given."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative.rag import BaseRetriever, Passage
from pipecat_speculative.testing import FakeLLMService, SpeculationAwareFakeLLMService
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)


class FakeRetriever(BaseRetriever):
    """Answers every query with one passage about it, after ``delay`` seconds.

    ``empty`` queries find nothing; ``fail`` makes every call raise; ``documents`` replaces the
    made-up passage with fixed ones.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        empty: set[str] | None = None,
        fail: Exception | None = None,
        documents: list[Passage] | None = None,
    ):
        self.delay = delay
        self.empty = empty or set()
        self.fail = fail
        self.documents = documents
        self.calls: list[str] = []
        self.finished: list[str] = []

    async def retrieve(
        self, query: str, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        self.calls.append(query)
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.finished.append(query)
        if query in self.empty:
            return []
        if self.documents is not None:
            return self.documents[:top_k]
        return [Passage(id="kb-1", text=f"Fact about {query}.", score=0.9, metadata={})]


def _recording(base):
    class Recording(base):
        """Also keeps every context it answered (messages copied) with its speculation flag."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.contexts: list[tuple[list[dict], bool]] = []

        async def _answer(self, frame: LLMContextFrame):
            self.contexts.append(([dict(m) for m in frame.context.messages], frame.speculation))
            await super()._answer(frame)

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


RecordingLLM = _recording(SpeculationAwareFakeLLMService)
RecordingStockLLM = _recording(FakeLLMService)


def speculative_aggregator(context: LLMContext, *, debounce=0.05, commit=0.35):
    strategy = SpeculativeUserTurnStopStrategy(
        commit_strategy=SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=commit),
        params=SpeculativeTurnParams(debounce=DebounceParams(initial_secs=debounce)),
    )
    return LLMUserAggregator(
        context,
        params=LLMUserAggregatorParams(user_turn_strategies=UserTurnStrategies(stop=[strategy])),
    )


def stock_aggregator(context: LLMContext, *, commit=0.35):
    return LLMUserAggregator(
        context,
        params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=commit)]
            )
        ),
    )


def passages_messages(messages: list[dict]) -> list[dict]:
    return [m for m in messages if "<passages>" in str(m.get("content"))]

"""The parallel RAG processor at frame level: ordering, single flight, budget, failures."""

from __future__ import annotations

import pytest
from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    LLMContextFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.metrics.timing_mark_frame import TimingMarkFrame
from pipecat_speculative.rag import (
    ParallelRAGProcessor,
    RAGParams,
    RAGTranscriptTap,
    RetrievalOutcome,
    RetrievalSource,
    SerialRAGProcessor,
)
from pipecat_speculative.testing import Timeline
from tests.rag.fakes import (
    FakeRetriever,
    RecordingLLM,
    RecordingStockLLM,
    passages_messages,
    speculative_aggregator,
    stock_aggregator,
)


def context(text: str, *, speculation: bool = False) -> LLMContextFrame:
    return LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": text}]), speculation=speculation
    )


def answers(frames) -> list[str]:
    """The texts the LLM answered, as they left it (after its gate)."""
    return [f.text for f in frames if isinstance(f, LLMTextFrame) and f.text != "ANSWER: "]


def rag_processor(retriever, **params) -> tuple[ParallelRAGProcessor, list]:
    params.setdefault("warmup_timeout_secs", 0)
    rag = ParallelRAGProcessor(retriever=retriever, params=RAGParams(**params))
    reports: list = []

    @rag.event_handler("on_retrieval_report")
    async def _on_report(_rag, report):
        reports.append(report)

    return rag, reports


@pytest.fixture
def warnings():
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    yield messages
    logger.remove(sink)


# ------------------------------------------------------------------ the RAG hazard

WITHDRAWN_THEN_COMMITTED = [
    UserStartedSpeakingFrame(),
    context("what does omni cost", speculation=True),
    SleepFrame(sleep=0.05),
    EagerEndOfTurnCancelFrame(),  # the user went on while the speculation waited for retrieval
    UserStoppedSpeakingFrame(),
    context("what does omni cost per seat"),
    SleepFrame(sleep=0.8),
]


async def test_a_slow_retrieval_and_a_withdrawal_never_yield_two_answers():
    retriever = FakeRetriever(delay=0.3)
    rag, reports = rag_processor(retriever)
    llm = RecordingStockLLM()
    down, _ = await run_test(Pipeline([rag, llm]), frames_to_send=list(WITHDRAWN_THEN_COMMITTED))
    assert answers(down) == ["what does omni cost per seat"]
    assert [s for _, s in llm.contexts] == [False]  # the withdrawn speculation never reached it
    assert [(r.speculative, r.outcome) for r in reports] == [
        (True, RetrievalOutcome.DROPPED),
        (False, RetrievalOutcome.PASSAGES),
    ]


async def test_a_serial_retriever_on_speculative_contexts_answers_twice():
    """The hazard this processor exists for, reproduced with the naive processor."""
    retriever = FakeRetriever(delay=0.3)
    serial = SerialRAGProcessor(retriever=retriever, retrieve_speculative=True)
    llm = RecordingStockLLM()
    down, _ = await run_test(Pipeline([serial, llm]), frames_to_send=list(WITHDRAWN_THEN_COMMITTED))
    assert answers(down) == ["what does omni cost", "what does omni cost per seat"]


async def test_a_speculation_withdrawn_while_queued_behind_a_waiting_context_is_dropped():
    retriever = FakeRetriever(delay=0.2)
    rag, reports = rag_processor(retriever)
    llm = RecordingLLM()
    frames = [
        context("first question"),  # waits for its retrieval; what follows queues behind it
        UserStartedSpeakingFrame(),
        context("second", speculation=True),
        EagerEndOfTurnCancelFrame(),  # overtakes the queued speculation
        UserStoppedSpeakingFrame(),
        context("second question in full"),
        SleepFrame(sleep=0.8),
    ]
    down, _ = await run_test(Pipeline([rag, llm]), frames_to_send=frames)
    assert answers(down) == ["first question", "second question in full"]
    assert retriever.calls == ["first question", "second question in full"]
    assert rag.contexts_dropped == 1
    assert reports[1].detail == "withdrawn"


async def test_the_turn_end_does_not_overtake_the_waiting_speculation_it_confirms():
    rag, _ = rag_processor(FakeRetriever(delay=0.2))
    down, _ = await run_test(
        rag,
        frames_to_send=[
            UserStartedSpeakingFrame(),
            context("what does omni cost", speculation=True),
            SleepFrame(sleep=0.05),
            UserStoppedSpeakingFrame(),  # the commit confirms it while it waits
            SleepFrame(sleep=0.4),
        ],
        expected_down_frames=[
            UserStartedSpeakingFrame,
            TimingMarkFrame,  # rag_start
            LLMContextFrame,
            TimingMarkFrame,  # rag_done
            UserStoppedSpeakingFrame,
        ],
    )
    released = down[2]
    assert released.speculation is True
    assert len(passages_messages(released.context.messages)) == 1
    assert [f.mark for f in down if isinstance(f, TimingMarkFrame)] == ["rag_start", "rag_done"]


async def test_the_next_turn_start_stays_behind_the_confirmed_speculation():
    rag, _ = rag_processor(FakeRetriever(delay=0.2))
    await run_test(
        rag,
        frames_to_send=[
            UserStartedSpeakingFrame(),
            context("what does omni cost", speculation=True),
            SleepFrame(sleep=0.05),
            UserStoppedSpeakingFrame(),
            UserStartedSpeakingFrame(),  # a sound right after the commit starts turn 2
            SleepFrame(sleep=0.4),
        ],
        expected_down_frames=[
            UserStartedSpeakingFrame,
            TimingMarkFrame,
            LLMContextFrame,
            TimingMarkFrame,
            UserStoppedSpeakingFrame,
            UserStartedSpeakingFrame,
        ],
    )


async def test_a_confirmed_speculation_waiting_for_retrieval_is_answered_once():
    llm = RecordingLLM()
    rag, _ = rag_processor(FakeRetriever(delay=0.2))
    down, _ = await run_test(
        Pipeline([rag, llm]),
        frames_to_send=[
            UserStartedSpeakingFrame(),
            context("what does omni cost", speculation=True),
            SleepFrame(sleep=0.05),
            UserStoppedSpeakingFrame(),
            SleepFrame(sleep=0.5),
        ],
    )
    assert answers(down) == ["what does omni cost"]
    assert [s for _, s in llm.contexts] == [True]


# ------------------------------------------------------------------ single flight and reuse


async def test_a_duplicate_query_retrieves_once():
    retriever = FakeRetriever(delay=0.2)
    rag, reports = rag_processor(retriever)
    llm = RecordingLLM()
    frames = [
        UserStartedSpeakingFrame(),
        context("What does Omni cost?", speculation=True),
        SleepFrame(sleep=0.05),
        EagerEndOfTurnCancelFrame(),
        UserStoppedSpeakingFrame(),
        context("what does omni cost"),  # the same question, formatted differently
        SleepFrame(sleep=0.6),
    ]
    down, _ = await run_test(Pipeline([rag, llm]), frames_to_send=frames)
    assert retriever.calls == ["What does Omni cost?"]
    assert [r.source for r in reports] == [RetrievalSource.STARTED, RetrievalSource.JOINED]
    assert reports[1].outcome == RetrievalOutcome.PASSAGES
    assert answers(down) == ["what does omni cost"]


async def test_an_empty_result_is_reused_not_queried_again():
    retriever = FakeRetriever(empty={"is there anything"})
    rag, reports = rag_processor(retriever)
    llm = RecordingLLM()
    frames = [
        context("is there anything"),
        SleepFrame(sleep=0.2),
        context("Is there anything?"),
        SleepFrame(sleep=0.3),
    ]
    await run_test(Pipeline([rag, llm]), frames_to_send=frames)
    assert retriever.calls == ["is there anything"]
    assert [(r.source, r.outcome) for r in reports] == [
        (RetrievalSource.STARTED, RetrievalOutcome.EMPTY),
        (RetrievalSource.REUSED, RetrievalOutcome.EMPTY),
    ]
    assert all(passages_messages(messages) == [] for messages, _ in llm.contexts)
    assert len(llm.contexts) == 2


async def test_a_failed_retrieval_is_not_reused():
    retriever = FakeRetriever(fail=RuntimeError("index down"))
    rag, _ = rag_processor(retriever)
    frames = [context("omni pricing"), SleepFrame(sleep=0.1), context("omni pricing")]
    await run_test(Pipeline([rag, RecordingLLM()]), frames_to_send=[*frames, SleepFrame(0.3)])
    assert retriever.calls == ["omni pricing", "omni pricing"]


# ------------------------------------------------------------------ budget and failures


async def test_the_budget_timeout_proceeds_without_passages(warnings):
    retriever = FakeRetriever(delay=5.0)
    rag, reports = rag_processor(retriever, budget_secs=0.1)
    llm = RecordingLLM()
    down, _ = await run_test(
        Pipeline([rag, llm]), frames_to_send=[context("omni pricing"), SleepFrame(sleep=0.4)]
    )
    assert answers(down) == ["omni pricing"]
    assert passages_messages(llm.contexts[0][0]) == []
    assert [r.outcome for r in reports] == [RetrievalOutcome.TIMEOUT]
    assert rag.timeouts == 1
    assert any("answering without passages" in m for m in warnings)


async def test_a_retriever_exception_is_logged_and_the_bot_answers(warnings):
    retriever = FakeRetriever(fail=RuntimeError("index down"))
    rag, reports = rag_processor(retriever)
    llm = RecordingLLM()
    down, _ = await run_test(
        Pipeline([rag, llm]), frames_to_send=[context("omni pricing"), SleepFrame(sleep=0.3)]
    )
    assert answers(down) == ["omni pricing"]
    assert reports[0].outcome == RetrievalOutcome.ERROR
    assert "index down" in (reports[0].detail or "")
    assert rag.errors == 1
    assert any("index down" in m for m in warnings)


# ------------------------------------------------------------------ through the user aggregator


async def test_the_adopted_speculation_carries_the_same_passages_as_the_commit():
    timeline = Timeline().say("what does the omni plan cost", pause_after_secs=0.8)

    speculative_llm = RecordingLLM()
    rag, _ = rag_processor(FakeRetriever(delay=0.1))
    await run_test(
        Pipeline([speculative_aggregator(LLMContext()), rag, speculative_llm]),
        frames_to_send=timeline.frames(),
    )
    stock_llm = RecordingStockLLM()
    serial = SerialRAGProcessor(retriever=FakeRetriever(delay=0.1))
    await run_test(
        Pipeline([stock_aggregator(LLMContext()), serial, stock_llm]),
        frames_to_send=timeline.frames(),
    )

    [(adopted, speculative)] = speculative_llm.contexts
    [(committed, not_speculative)] = stock_llm.contexts
    assert (speculative, not_speculative) == (True, False)
    assert len(passages_messages(adopted)) == 1
    assert adopted == committed


async def test_resumed_speech_during_a_slow_retrieval_gets_one_answer_for_the_whole_sentence():
    retriever = FakeRetriever(delay=0.5)
    rag, _ = rag_processor(retriever)
    llm = RecordingLLM()
    timeline = (
        Timeline()
        .say("what does omni", pause_after_secs=0.2)  # speculated on, then the user goes on
        .say("cost per seat", pause_after_secs=1.2)
    )
    down, _ = await run_test(
        Pipeline([speculative_aggregator(LLMContext()), rag, llm]),
        frames_to_send=timeline.frames(),
    )
    assert answers(down) == ["what does omni cost per seat"]
    assert rag.contexts_dropped >= 1
    assert [text for text, _ in llm.started] == ["what does omni cost per seat"]


async def test_the_transcript_tap_prefetches_and_the_speculation_joins_it():
    retriever = FakeRetriever(delay=0.3)
    rag, reports = rag_processor(retriever, prefetch_debounce_secs=0.05)
    llm = RecordingLLM()
    pipeline = Pipeline(
        [RAGTranscriptTap(rag), speculative_aggregator(LLMContext(), debounce=0.3), rag, llm]
    )
    timeline = Timeline().say("tell me about the pricing", pause_after_secs=1.2)
    down, _ = await run_test(pipeline, frames_to_send=timeline.frames())
    assert retriever.calls == ["tell me about the pricing"]
    assert reports[0].source in (RetrievalSource.JOINED, RetrievalSource.REUSED)
    assert answers(down) == ["tell me about the pricing"]
    assert (rag.prefetches_started, rag.prefetch_hits) == (1, 1)


async def test_speculative_contexts_flushed_before_processing_do_not_pile_up():
    # An interruption flushes queued contexts without processing them, so their sequence
    # numbers are never popped (the same leak as the LLM mixin had): only the newest stay.
    rag, _ = rag_processor(FakeRetriever())
    for i in range(200):
        await rag.queue_frame(context(f"question {i}", speculation=True))
    assert len(rag._speculative_seq) <= 64

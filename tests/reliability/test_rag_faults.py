"""Pinecone faults through the parallel RAG processor, with the real pinecone SDK on the stand-in.

The turn is answered without passages, the failure is logged and counted. Covered elsewhere with a
scripted retriever: the budget timeout and a retriever exception (tests/rag/test_parallel_rag_processor.py).
"""

from __future__ import annotations

import pytest
from pipecat.frames.frames import LLMContextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_speculative.rag import ParallelRAGProcessor, PineconeRetriever, RAGParams
from pipecat_speculative.rag.ingest import ingest_paths, sample_document
from pipecat_speculative.rag.retrieval_report import RetrievalOutcome
from tests.rag.fakes import RecordingLLM, passages_messages
from tests.rag.test_ingest import HashEmbedder

QUESTION = "what does the omni plan cost"
TIMEOUT = RetrievalOutcome.TIMEOUT
FAILED = {RetrievalOutcome.ERROR, RetrievalOutcome.TIMEOUT}


@pytest.fixture
async def retriever(pinecone_standin):
    retriever = PineconeRetriever(
        embedder=HashEmbedder(), host=pinecone_standin.base_url, api_key="test", min_score=None
    )
    await ingest_paths([sample_document()], target=retriever, embedder=retriever.embedder)
    return retriever


async def ask(retriever, budget_secs: float = 0.5):
    rag = ParallelRAGProcessor(
        retriever=retriever, params=RAGParams(budget_secs=budget_secs, warmup_timeout_secs=0)
    )
    reports: list = []

    @rag.event_handler("on_retrieval_report")
    async def _on_report(_rag, report):
        reports.append(report)

    llm = RecordingLLM()
    frame = LLMContextFrame(context=LLMContext(messages=[{"role": "user", "content": QUESTION}]))
    await run_test(Pipeline([rag, llm]), frames_to_send=[frame, SleepFrame(budget_secs + 0.2)])
    [(messages, _)] = llm.contexts  # answered, once
    return rag, reports, messages


async def test_a_healthy_index_gives_the_answer_its_passages(retriever):
    rag, reports, messages = await ask(retriever)
    assert [r.outcome for r in reports] == [RetrievalOutcome.PASSAGES]
    assert len(passages_messages(messages)) == 1


@pytest.mark.parametrize(
    ("arm", "outcome", "counter"),
    [
        (lambda s: s.faults.http_error(403, path="/query"), RetrievalOutcome.ERROR, "errors"),
        (lambda s: s.faults.http_error(400, path="/query"), RetrievalOutcome.ERROR, "errors"),
        # The SDK retries a 5xx and a cut connection once (jittered 0.25-0.75 s): an error
        # after it, or the budget first; either way the turn goes on without passages.
        (lambda s: s.faults.http_error(503, path="/query", times=None), FAILED, "failures"),
        (lambda s: s.faults.disconnect(path="/query", times=None), FAILED, "failures"),
        (lambda s: s.faults.slow_first_byte(0.8, path="/query"), TIMEOUT, "timeouts"),
    ],
    ids=["403", "400", "503", "disconnect", "slow"],
)
async def test_a_failing_index_is_answered_without_passages_logged_and_counted(
    retriever, pinecone_standin, all_logs, arm, outcome, counter
):
    fault = arm(pinecone_standin)
    rag, reports, messages = await ask(retriever)
    assert fault.fired >= 1
    assert passages_messages(messages) == []  # answered, without passages
    assert messages[-1] == {"role": "user", "content": QUESTION}
    [report] = reports
    assert report.outcome in outcome if isinstance(outcome, set) else report.outcome == outcome
    counted = rag.errors + rag.timeouts if counter == "failures" else getattr(rag, counter)
    assert counted == 1
    # One query, at most one SDK retry: no thread left retrying for seconds after the turn.
    assert sum(r.path == "/query" for r in pinecone_standin.requests) <= 2
    assert any(m.startswith("WARNING") and "without passages" in m for m in all_logs)


async def test_one_5xx_is_retried_by_the_sdk_and_the_answer_has_its_passages(
    retriever, pinecone_standin
):
    # The SDK's first retry waits 0.25-0.75 s (jittered): a budget that covers it.
    fault = pinecone_standin.faults.http_error(503, path="/query")
    _, reports, messages = await ask(retriever, budget_secs=1.5)
    assert fault.fired == 1
    assert [r.outcome for r in reports] == [RetrievalOutcome.PASSAGES]
    assert len(passages_messages(messages)) == 1

"""The bench with retrieval: every system retrieves from the sample document on every turn.

Real pinecone SDK against the Pinecone stand-in, real MiniLM embeddings, real Pipecat services
against the stand-ins on the ``instant`` profile. Nothing here is timed: what is asserted is that
retrieval ran on the RAG turn of every system, that its counters add up (the parallel processor
retrieves once per distinct query), and that the answer quotes the sample document.
"""

import pytest
import yaml
from rich.console import Console

from pipecat_speculative.bench import BenchOptions, run_bench
from pipecat_speculative.bench_rag import (
    RecordingRetriever,
    SampleKnowledgeBase,
    local_store_latency,
    rag_available,
)
from pipecat_speculative.rag.ingest import sample_document
from pipecat_speculative.rag.local_vector_store import LocalVectorStore

pytestmark = pytest.mark.skipif(not rag_available(), reason="needs the rag and pinecone extras")

TINY_RAG = {
    "name": "tiny_rag",
    "gap_after_bot_ms": 400,
    "turns": [
        {"segments": ["Hello there"]},
        {"needs_rag": True, "segments": ["What does the document say about pricing?"]},
    ],
}

PRICING = "Pricing: Omni Dimension is priced per seat"


@pytest.fixture(scope="module")
def knowledge() -> SampleKnowledgeBase:
    return SampleKnowledgeBase()


@pytest.fixture
def tiny_rag_suite(tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "tiny_rag.yaml").write_text(yaml.safe_dump(TINY_RAG))
    return scenarios


def quiet_console() -> Console:
    return Console(file=open("/dev/null", "w"), width=160)  # noqa: SIM115


async def test_every_system_retrieves_on_the_rag_turn_and_answers_from_the_document(
    tiny_rag_suite,
):
    document = await run_bench(
        BenchOptions(scenarios_dir=tiny_rag_suite, profiles=["instant"], playback_speed=8.0),
        console=quiet_console(),
    )

    assert document["rag"]["chunks"] == 6
    assert document["rag"]["document"] == sample_document().name
    for name, system in document["systems"].items():
        rag = system["rag"]
        committed = system["committed_turns"]
        assert committed == 2, name
        assert system["answers_per_committed_turn"] == 1.0, name
        # The RAG turn is scored as one: its record shows the retrieval.
        assert system["latency_ms_rag"]["n"] == 1, name
        assert system["latency_ms_rag_unretrieved"]["p50"] is None, name
        counts = rag["counts"]
        assert counts["timeouts"] == 0 and counts["errors"] == 0, name
        assert counts["retrievals_started"] == counts["backend_calls"] >= committed, name
        assert rag["per_turn"]["retrievals_started"] == pytest.approx(
            counts["retrievals_started"] / committed, abs=1e-3
        )
        # The pricing question reached the LLM with the pricing passage, and the answer quotes it.
        assert rag["llm_requests_with_passages"] >= 1, name
        assert any(p.startswith(PRICING) for p in rag["passages_quoted"]), name

    for name in ("stock", "eager_flux"):
        counts = document["systems"][name]["rag"]["counts"]
        # Serial: one retrieval per commit, nothing shared.
        assert counts["retrievals_started"] == 2, name
        assert counts["retrievals_joined"] == counts["retrievals_reused"] == 0, name

    spec = document["systems"]["speculative"]["rag"]
    # Single flight: every query that reached Pinecone was distinct; the contexts that asked a
    # question already asked joined or reused it instead.
    assert spec["duplicate_retrievals"] == 0
    assert spec["retrievals_per_distinct_query"] == 1.0
    asked = spec["counts"]["retrievals_joined"] + spec["counts"]["retrievals_reused"]
    assert asked + spec["counts"]["retrievals_started"] >= 2


async def test_the_knowledge_base_is_embedded_once_and_recorded_per_session(
    knowledge, pinecone_standin
):
    first = await knowledge.records()
    assert await knowledge.records() is first
    retriever = await knowledge.pinecone_retriever(pinecone_standin)
    assert await retriever.count() == len(first) == 6
    recording = RecordingRetriever(retriever)
    passages = await recording.retrieve("How much does the Growth plan cost?", top_k=2)
    assert passages and passages[0].text.startswith(PRICING)
    assert passages[0].metadata["source"] == sample_document().name
    (call,) = recording.calls
    assert call.query == "How much does the Growth plan cost?" and call.hits == len(passages)


async def test_a_local_store_is_filled_once_and_queried(knowledge, tmp_path):
    retriever = await knowledge.local_retriever(tmp_path / "store")
    again = await knowledge.local_retriever(tmp_path / "store")
    assert len(again.store) == 6
    passages = await retriever.retrieve("How is the phone menu replaced?", top_k=1)
    assert passages[0].text.startswith("IVR section:")


async def test_the_local_store_latency_is_reported(knowledge):
    report = await local_store_latency(knowledge.embedder, chunks=500, queries=3)
    assert report["chunks"] == 500 and report["queries"] == 3
    assert 0 < report["total_p50_ms"] <= report["total_max_ms"]


async def test_the_demo_retrieves_from_the_local_store_on_its_rag_turn(tiny_rag_suite, tmp_path):
    from pipecat_speculative.demo import run_demo, waterfall_rows

    out = tmp_path / "out"
    result = await run_demo(
        out_dir=out,
        scenario=str(tiny_rag_suite / "tiny_rag.yaml"),
        profile_path="instant",
        console=quiet_console(),
        configure_logging=False,
        playback_speed=8.0,
    )

    assert len(LocalVectorStore(out / "rag_store")) == 6
    rag_turn = result.records[-1]
    assert rag_turn.answers == 1
    assert rag_turn.moment("rag_start") is not None
    assert rag_turn.moment("rag_done") is not None or rag_turn.moment("rag_skip") is not None
    labels = [label for _, label, _ in waterfall_rows(rag_turn)]
    assert "retrieval starts" in labels
    counters = result.rag_counters
    assert counters["retrievals_started"] >= 1 and counters["errors"] == 0


def test_the_openai_standin_quotes_an_injected_passage_unescaped():
    from pipecat_speculative.rag import Passage, passages_message
    from pipecat_speculative.standins.deterministic_llm import reply_to

    passage = Passage(
        id="p1",
        text='Pricing: Growth costs 59 euros & "more" <b>. The pilot is free.',
        score=0.9,
        metadata={"source": "omni_dimension_proposal.md"},
    )
    messages = [
        {"role": "system", "content": "You are a voice assistant."},
        passages_message([passage]),
        {"role": "user", "content": "What does it cost?"},
    ]

    reply = reply_to(messages)

    assert reply.source == "retrieval" and reply.question == "What does it cost?"
    assert 'The first passage says: Pricing: Growth costs 59 euros & "more" <b>.' in reply.text
    assert reply_to([passages_message([]), messages[-1]]).source == "retrieval-empty"

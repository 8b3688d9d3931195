"""PineconeRetriever with the real pinecone SDK against the Pinecone stand-in."""

from __future__ import annotations

import pytest

from pipecat_speculative.rag import PineconeRetriever
from pipecat_speculative.rag.ingest import ingest_paths, sample_document
from tests.rag.test_ingest import HashEmbedder


@pytest.fixture
def retriever(pinecone_standin):
    return PineconeRetriever(
        embedder=HashEmbedder(),
        host=pinecone_standin.base_url,
        api_key="test",
        namespace="kb",
        min_score=None,
        upsert_batch_size=100,
    )


async def test_a_batched_upsert_stores_every_vector(tmp_path, pinecone_standin, retriever):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(25):
        (docs / f"doc{i}.md").write_text(
            "\n\n".join(f"# Part {j}\n\nDocument {i} part {j} says {i * j}." for j in range(12))
        )
    report = await ingest_paths([docs], target=retriever, embedder=retriever.embedder)
    assert report.errors == []
    assert report.written == 300
    assert await retriever.count() == 300
    assert pinecone_standin.total_vector_count == 300
    assert pinecone_standin.stats.requests_by_path["/vectors/upsert"] >= 3  # batched


async def test_a_re_ingest_into_pinecone_writes_nothing(pinecone_standin, retriever):
    first = await ingest_paths([sample_document()], target=retriever, embedder=retriever.embedder)
    second = await ingest_paths([sample_document()], target=retriever, embedder=retriever.embedder)
    assert (first.written, second.written, second.unchanged) == (6, 0, 6)
    assert await retriever.count() == 6


async def test_a_filtered_query_returns_only_matching_passages_with_their_text(tmp_path, retriever):
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha one.\n\n# Beta\n\nBeta two.")
    (tmp_path / "b.md").write_text("# Gamma\n\nGamma three.")
    await ingest_paths([tmp_path], target=retriever, embedder=retriever.embedder)
    source = (tmp_path / "b.md").as_posix()
    hits = await retriever.retrieve("Gamma three.", top_k=5, filter={"source": source})
    assert [p.text for p in hits] == ["Gamma: Gamma three."]
    assert hits[0].metadata["source"] == source
    everything = await retriever.retrieve("Alpha: Alpha one.", top_k=5)
    assert len(everything) == 3
    assert everything[0].text == "Alpha: Alpha one."
    assert everything[0].score == pytest.approx(1.0, abs=1e-4)


async def test_the_score_floor_and_the_namespace_apply(pinecone_standin, retriever):
    await ingest_paths([sample_document()], target=retriever, embedder=retriever.embedder)
    strict = PineconeRetriever(
        embedder=retriever.embedder, index=retriever.index, namespace="kb", min_score=0.99
    )
    assert await strict.retrieve("something unrelated", top_k=3) == []
    other = PineconeRetriever(embedder=retriever.embedder, index=retriever.index, namespace="x")
    assert await other.retrieve("pricing", top_k=3) == []
    assert await other.count() == 0

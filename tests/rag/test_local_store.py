"""The embedded backend: local vector store (across processes), MiniLM embedder, local retriever."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipecat_speculative.rag import LocalEmbedder, LocalRetriever, LocalVectorStore, VectorRecord
from pipecat_speculative.rag.ingest import ingest_paths, sample_document


def unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def record(i: int, **metadata) -> VectorRecord:
    return VectorRecord(
        id=f"doc-{i}", text=f"text {i}", vector=unit(i), metadata=metadata, content_hash=f"h{i}"
    )


def test_a_query_returns_the_nearest_records_best_first(tmp_path):
    store = LocalVectorStore(tmp_path)
    store.upsert([record(i) for i in range(20)])
    hits = store.query(unit(7), top_k=3)
    assert hits[0].id == "doc-7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_metadata_filters_are_equalities(tmp_path):
    store = LocalVectorStore(tmp_path)
    store.upsert(
        [record(i, topic=["billing", "ivr"][i % 2], tags=[f"t{i % 3}"]) for i in range(12)]
    )
    assert {
        p.metadata["topic"] for p in store.query(unit(0), top_k=12, filter={"topic": "ivr"})
    } == {"ivr"}
    assert len(store.query(unit(0), top_k=12, filter={"tags": "t1"})) == 4
    assert store.query(unit(0), top_k=12, filter={"missing": 1}) == []


def test_upsert_is_idempotent_and_a_change_replaces_the_record(tmp_path):
    store = LocalVectorStore(tmp_path)
    assert store.upsert([record(1), record(2)]) == 2
    assert store.upsert([record(1), record(2)]) == 0
    changed = VectorRecord(id="doc-1", text="new", vector=unit(9), content_hash="h-new")
    assert store.upsert([changed]) == 1
    assert len(store) == 2
    assert store.get("doc-1").text == "new"
    assert store.delete(["doc-2", "nope"]) == 1
    assert store.ids() == ["doc-1"]


def test_a_compacted_store_reloads_with_the_same_records(tmp_path):
    store = LocalVectorStore(tmp_path)
    store.upsert([record(i) for i in range(5)])
    store.upsert([VectorRecord(id="doc-0", text="v2", vector=unit(0), content_hash="x")])
    store.delete(["doc-4"])
    store.compact()
    again = LocalVectorStore(tmp_path)
    assert again.ids() == ["doc-0", "doc-1", "doc-2", "doc-3"]
    assert again.get("doc-0").text == "v2"


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pipecat_speculative.rag.local_vector_store import LocalVectorStore, VectorRecord

    directory, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = LocalVectorStore(directory)
    for i in range(first, first + count):
        v = np.random.default_rng(i).normal(size=8).astype(np.float32)
        store.upsert([VectorRecord(id=f"doc-{i}", text=f"text {i}", vector=v / np.linalg.norm(v),
                                   content_hash=f"h{i}")])
    """
)


def test_the_store_is_shared_safely_between_processes(tmp_path):
    reader = LocalVectorStore(tmp_path)
    assert len(reader) == 0
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(first), "40"])
        for first in (0, 1000)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert len(reader) == 80  # the reader picks up both writers' appends
    assert reader.query(unit(1007), top_k=1)[0].id == "doc-1007"
    lines = (tmp_path / "vectors.jsonl").read_text().splitlines()
    assert len(lines) == 80  # whole lines, never interleaved


def test_a_store_refuses_vectors_of_another_model(tmp_path):
    LocalVectorStore(tmp_path, model_id="model-a").upsert([record(1)])
    with pytest.raises(ValueError, match="model-a"):
        LocalVectorStore(tmp_path, model_id="model-b")


@pytest.fixture(scope="module")
def embedder():
    return LocalEmbedder()


async def test_the_local_embedder_makes_unit_vectors_that_rank_by_meaning(embedder):
    vectors = await embedder.embed(
        ["How much does the plan cost?", "Pricing per seat and month", "The cat sat on the mat"]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


async def test_the_local_retriever_answers_from_the_sample_document(tmp_path, embedder):
    store = LocalVectorStore(tmp_path, model_id=embedder.model_id)
    await ingest_paths([sample_document()], target=store, embedder=embedder)
    retriever = LocalRetriever(store, embedder=embedder)
    pricing = await retriever.retrieve("How much does the Growth plan cost per seat?", top_k=2)
    assert pricing[0].text.startswith("Pricing:")
    ivr = await retriever.retrieve("what happens to the phone menu", top_k=1)
    assert ivr[0].text.startswith("IVR section:")
    assert await retriever.retrieve("zebra migration patterns in kenya", top_k=3) == []

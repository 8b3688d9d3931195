"""The Pinecone stand-in against the real Pinecone SDK (sync in a thread, and asyncio)."""

import asyncio

import numpy as np
import pytest
from pinecone import Pinecone
from pinecone.errors.exceptions import ResponseParsingError, ServiceError

from pipecat_speculative.standins.pinecone_server import PineconeStandin, matches_filter
from pipecat_speculative.standins.profile import LatencyProfile

DIM = 384


def vectors(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "id": f"doc-{i}",
            "values": rng.normal(size=DIM).tolist(),
            "metadata": {"topic": ["billing", "shipping"][i % 2], "n": i, "text": f"passage {i}"},
        }
        for i in range(n)
    ]


@pytest.fixture
def index(pinecone_standin):
    return Pinecone(api_key="test").Index(host=pinecone_standin.base_url)


async def test_a_batched_upsert_over_one_megabyte_stores_every_vector(pinecone_standin, index):
    docs = vectors(1200)  # ~9 MB of JSON: over aiohttp's default body limit
    response = await asyncio.to_thread(
        index.upsert, vectors=docs, namespace="kb", batch_size=400, show_progress=False
    )
    assert response.upserted_count == 1200
    assert pinecone_standin.total_vector_count == 1200
    assert pinecone_standin.stats.requests_by_path["/vectors/upsert"] == 3
    stats = await asyncio.to_thread(index.describe_index_stats)
    assert stats.total_vector_count == 1200
    assert stats.dimension == DIM
    assert stats.namespaces["kb"].vector_count == 1200


async def test_a_query_returns_the_nearest_vectors_with_metadata(index):
    docs = vectors(50)
    await asyncio.to_thread(index.upsert, vectors=docs, namespace="kb")
    result = await asyncio.to_thread(
        index.query, vector=docs[7]["values"], top_k=3, include_metadata=True, namespace="kb"
    )
    assert [m.id for m in result.matches][0] == "doc-7"
    assert result.matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.matches[0].metadata["text"] == "passage 7"
    assert result.matches[0].score >= result.matches[1].score >= result.matches[2].score
    assert result.namespace == "kb"
    assert result.usage.read_units >= 1


async def test_query_filters_and_query_by_id(index):
    docs = vectors(40)
    await asyncio.to_thread(index.upsert, vectors=docs)
    shipping = await asyncio.to_thread(
        index.query,
        vector=docs[0]["values"],
        top_k=40,
        include_metadata=True,
        filter={"topic": {"$eq": "shipping"}},
    )
    assert len(shipping.matches) == 20
    assert {m.metadata["topic"] for m in shipping.matches} == {"shipping"}
    picked = await asyncio.to_thread(
        index.query, id="doc-3", top_k=5, filter={"n": {"$in": [3, 5, 9]}}, include_values=True
    )
    assert [m.id for m in picked.matches][0] == "doc-3"
    assert {m.id for m in picked.matches} == {"doc-3", "doc-5", "doc-9"}
    assert len(picked.matches[0].values) == DIM


async def test_delete_and_fetch(pinecone_standin, index):
    await asyncio.to_thread(index.upsert, vectors=vectors(10), namespace="kb")
    await asyncio.to_thread(index.delete, ids=["doc-1", "doc-2"], namespace="kb")
    fetched = await asyncio.to_thread(index.fetch, ids=["doc-1", "doc-3"], namespace="kb")
    assert set(fetched.vectors) == {"doc-3"}
    assert fetched.vectors["doc-3"].metadata["n"] == 3
    await asyncio.to_thread(index.delete, filter={"topic": {"$eq": "billing"}}, namespace="kb")
    assert pinecone_standin.total_vector_count == 4  # doc-3, doc-5, doc-7, doc-9
    await asyncio.to_thread(index.delete, delete_all=True, namespace="kb")
    stats = await asyncio.to_thread(index.describe_index_stats)
    assert stats.total_vector_count == 0


async def test_the_asyncio_client_works_on_the_same_loop(pinecone_standin):
    docs = vectors(5)
    async with Pinecone(api_key="test").IndexAsyncio(host=pinecone_standin.base_url) as index:
        upserted = await index.upsert(vectors=docs)
        result = await index.query(vector=docs[2]["values"], top_k=1, include_metadata=True)
    assert upserted.upserted_count == 5
    assert result.matches[0].id == "doc-2"


async def test_a_dimension_mismatch_is_refused(index):
    await asyncio.to_thread(index.upsert, vectors=vectors(2))
    with pytest.raises(Exception, match="dimension"):
        await asyncio.to_thread(index.upsert, vectors=[{"id": "x", "values": [1.0, 2.0]}])


async def test_a_one_shot_429_is_retried_by_the_sdk(pinecone_standin, index):
    await asyncio.to_thread(index.upsert, vectors=vectors(3))
    pinecone_standin.faults.http_error(429, path="/query")
    result = await asyncio.to_thread(index.query, vector=vectors(1)[0]["values"], top_k=1)
    assert result.matches[0].id == "doc-0"
    assert [r.status for r in pinecone_standin.requests if r.path == "/query"] == [429, 200]


@pytest.mark.slow
async def test_a_persistent_500_is_a_service_error_after_the_sdks_retries(pinecone_standin, index):
    # The SDK's data-plane retry policy (3 retries, jittered backoff) is not configurable: ~2-8 s.
    pinecone_standin.faults.http_error(500, path="/query", times=None)
    with pytest.raises(ServiceError):
        await asyncio.to_thread(index.query, vector=[0.1] * DIM, top_k=1)
    assert pinecone_standin.stats.requests_by_path["/query"] == 4


async def test_a_cut_connection_is_retried_by_the_sdk(pinecone_standin, index):
    pinecone_standin.faults.disconnect(path="/describe_index_stats")
    stats = await asyncio.to_thread(index.describe_index_stats)
    assert stats.total_vector_count == 0
    assert pinecone_standin.stats.requests_by_path["/describe_index_stats"] == 2


async def test_an_invalid_json_answer_is_a_parsing_error(pinecone_standin, index):
    pinecone_standin.faults.malformed("invalid_json", path="/query")
    with pytest.raises(ResponseParsingError):
        await asyncio.to_thread(index.query, vector=[0.1] * DIM, top_k=1)


async def test_an_answer_missing_its_matches_reads_as_no_matches(pinecone_standin, index):
    # The SDK does not raise here: a RAG client cannot tell this from an empty result.
    await asyncio.to_thread(index.upsert, vectors=vectors(3))
    pinecone_standin.faults.malformed("missing_fields", path="/query")
    result = await asyncio.to_thread(index.query, vector=vectors(1)[0]["values"], top_k=1)
    assert result.matches == []


async def test_queries_wait_the_profiles_rag_latency():
    async with PineconeStandin(profile=LatencyProfile.instant(rag_query_secs=0.3)) as server:
        index = Pinecone(api_key="test").Index(host=server.base_url)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.to_thread(index.query, vector=[0.1] * 4, top_k=1)
        assert loop.time() - start >= 0.8 * 0.3


def test_filters_cover_pinecones_operators():
    meta = {"topic": "billing", "n": 5, "tags": ["a", "b"]}
    assert matches_filter(meta, {"topic": "billing"})
    assert matches_filter(meta, {"n": {"$gte": 5, "$lt": 6}})
    assert matches_filter(meta, {"tags": {"$in": ["b", "z"]}})
    assert matches_filter(meta, {"tags": "a"})
    assert not matches_filter(meta, {"tags": {"$nin": ["a"]}})
    assert matches_filter(meta, {"$or": [{"n": 1}, {"topic": {"$ne": "x"}}]})
    assert not matches_filter(meta, {"$and": [{"n": 5}, {"missing": {"$exists": True}}]})
    with pytest.raises(ValueError):
        matches_filter(meta, {"n": {"$regex": "x"}})

"""Pinecone data-plane stand-in (loopback, in-memory, exact search with numpy).

Speaks enough of Pinecone's index data plane for the real SDK (``pinecone`` 10.x) to run
unchanged against it::

    index = Pinecone(api_key="test").Index(host=server.base_url)          # sync; run in a thread
    index = Pinecone(api_key="test").IndexAsyncio(host=server.base_url)   # asyncio

Endpoints (JSON, header ``Api-Key``): ``POST /vectors/upsert`` ``{vectors: [{id, values,
metadata}], namespace}`` → ``{"upsertedCount"}``; ``POST /query`` ``{topK, vector | id, filter,
namespace, includeMetadata, includeValues}`` → ``{"matches": [{id, score, [values], [metadata]}],
"namespace", "usage": {"readUnits"}}``; ``POST /describe_index_stats``; ``POST /vectors/delete``
``{ids | deleteAll | filter, namespace}``; ``GET /vectors/fetch?ids=..&namespace=..``;
``POST /vectors/update``; ``GET /vectors/list``. Errors are ``{"code", "message", "details"}`` with
Pinecone's gRPC-style codes.

Search is exact (all vectors scored): cosine (default), dotproduct or euclidean. Filters support
``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`` and the implicit ``{"field": value}``
equality; a list-valued metadata field matches ``$eq``/``$in`` when any element does, as in
Pinecone. The index dimension is fixed by the constructor or by the first upsert.

The request body limit is 64 MB: the SDK batches upserts, and a server with aiohttp's default
1 MB limit answers 413, which the SDK does not always raise on (vectors silently missing). Read
units are an estimate (1 per query plus 1 per 1,000 vectors scanned), not Pinecone's billing.
Queries wait ``rag_query_secs`` and upserts ``rag_upsert_secs`` from the profile.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import web

from pipecat_speculative.standins.base import StandinServer
from pipecat_speculative.standins.faults import FaultKind
from pipecat_speculative.standins.profile import LatencyProfile

__all__ = ["PineconeStandin", "matches_filter"]

Metric = Literal["cosine", "dotproduct", "euclidean"]

_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 413: 3, 429: 8, 500: 13, 503: 14}


class _FilterError(ValueError):
    pass


def _compare(value: Any, op: str, operand: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return operand in values
    if op == "$ne":
        return value is not None and operand not in values
    if op == "$in":
        if not isinstance(operand, list):
            raise _FilterError("$in needs a list")
        return any(v in operand for v in values)
    if op == "$nin":
        if not isinstance(operand, list):
            raise _FilterError("$nin needs a list")
        return value is not None and not any(v in operand for v in values)
    if op == "$exists":
        return (value is not None) == bool(operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        if not isinstance(operand, int | float):
            raise _FilterError(f"{op} needs a number")
        return {
            "$gt": value > operand,
            "$gte": value >= operand,
            "$lt": value < operand,
            "$lte": value <= operand,
        }[op]
    raise _FilterError(f"unsupported filter operator {op}")


def matches_filter(metadata: Mapping[str, Any] | None, flt: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` satisfies a Pinecone metadata filter (empty filter: always).

    Raises:
        ValueError: On an operator the stand-in does not know or a malformed operand.
    """
    if not flt:
        return True
    metadata = metadata or {}
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches_filter(metadata, c) for c in cond):
                return False
        elif key == "$or":
            if not any(matches_filter(metadata, c) for c in cond):
                return False
        elif key.startswith("$"):
            raise _FilterError(f"unsupported filter operator {key}")
        elif isinstance(cond, Mapping):
            if not all(_compare(metadata.get(key), op, v) for op, v in cond.items()):
                return False
        elif not _compare(metadata.get(key), "$eq", cond):
            return False
    return True


@dataclass
class _Namespace:
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


class PineconeStandin(StandinServer):
    """Loopback Pinecone index (data plane) with exact in-memory search.

    Args:
        profile: Latency profile (``rag_query_secs``, ``rag_upsert_secs``, the ``"pinecone"``
            new-connection penalty).
        dimension: Index dimension; None takes it from the first upsert.
        metric: Similarity metric.
        **kwargs: :class:`StandinServer` options (``client_max_size`` defaults to 64 MB).
    """

    service = "pinecone"

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        dimension: int | None = None,
        metric: Metric = "cosine",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("client_max_size", 64 * 1024**2)
        super().__init__(profile=profile, **kwargs)
        if metric not in ("cosine", "dotproduct", "euclidean"):
            raise ValueError(f"unknown metric {metric!r}")
        self.dimension = dimension
        self.metric: Metric = metric
        self.namespaces: dict[str, _Namespace] = {}
        self.upserted_total = 0
        self.queries_total = 0

    def _describe(self) -> str:
        return f"in-memory index, metric={self.metric}, dimension={self.dimension}"

    def _setup_routes(self, app: web.Application) -> None:
        app.router.add_post("/vectors/upsert", self._upsert)
        app.router.add_post("/query", self._query)
        app.router.add_post("/describe_index_stats", self._describe_stats)
        app.router.add_get("/describe_index_stats", self._describe_stats)
        app.router.add_post("/vectors/delete", self._delete)
        app.router.add_get("/vectors/fetch", self._fetch)
        app.router.add_post("/vectors/update", self._update)
        app.router.add_get("/vectors/list", self._list)

    def _authorized(self, request: web.Request) -> bool:
        return self._key_ok(request.headers.get("Api-Key"))

    def _error_response(
        self, status: int, message: str, *, retry_after_secs: float | None = None
    ) -> web.Response:
        body = {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []}
        headers = {}
        if retry_after_secs is not None:
            headers["Retry-After"] = f"{retry_after_secs:g}"
        return web.json_response(body, status=status, headers=headers)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def total_vector_count(self) -> int:
        """Vectors stored over all namespaces."""
        return sum(len(ns.vectors) for ns in self.namespaces.values())

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return self._error_response(400, "Invalid JSON body.")
        if not isinstance(body, dict):
            return self._error_response(400, "The request body must be a JSON object.")
        return body

    def _reply(
        self, request: web.Request, payload: dict[str, Any], missing: dict[str, Any]
    ) -> web.Response:
        """The JSON answer, unless a DISCONNECT or MALFORMED fault is armed for this path."""
        if self._take_fault(FaultKind.DISCONNECT, request):
            self._abort(request)
            return web.Response(status=500)
        if fault := self._take_fault(FaultKind.MALFORMED, request):
            return web.Response(
                text=self._malformed_json(fault, missing), content_type="application/json"
            )
        return web.json_response(payload)

    def _vector(self, values: Any) -> np.ndarray | str:
        if not isinstance(values, list) or not values:
            return "Vector values must be a non-empty list of numbers."
        try:
            vec = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            return "Vector values must be numbers."
        if vec.ndim != 1 or not np.all(np.isfinite(vec)):
            return "Vector values must be finite numbers."
        if self.dimension is not None and len(vec) != self.dimension:
            return (
                f"Vector dimension {len(vec)} does not match the dimension of the index "
                f"{self.dimension}"
            )
        return vec

    def _scores(self, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self.metric == "dotproduct":
            return matrix @ query
        if self.metric == "euclidean":
            return np.linalg.norm(matrix - query, axis=1)
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(norms > 0, (matrix @ query) / norms, 0.0)
        return scores

    # -- endpoints ----------------------------------------------------------------------------

    async def _upsert(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        vectors = body.get("vectors")
        if not isinstance(vectors, list):
            return self._error_response(400, "Missing required field 'vectors'.")
        namespace = str(body.get("namespace") or "")
        parsed: list[tuple[str, np.ndarray, dict[str, Any] | None]] = []
        for v in vectors:
            if not isinstance(v, dict) or not isinstance(v.get("id"), str) or not v["id"]:
                return self._error_response(400, "Each vector needs a non-empty string 'id'.")
            vec = self._vector(v.get("values"))
            if isinstance(vec, str):
                return self._error_response(400, vec)
            if self.dimension is None:
                self.dimension = len(vec)
            metadata = v.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                return self._error_response(400, "Metadata must be an object.")
            parsed.append((v["id"], vec, metadata))
        await asyncio.sleep(self.profile.delay(self.profile.rag_upsert_secs))
        ns = self.namespaces.setdefault(namespace, _Namespace())
        for vid, vec, metadata in parsed:
            ns.vectors[vid] = vec
            if metadata is not None:
                ns.metadata[vid] = metadata
            else:
                ns.metadata.pop(vid, None)
        self.upserted_total += len(parsed)
        self.record_of(request).info.update(upserted=len(parsed), namespace=namespace)
        return self._reply(request, {"upsertedCount": len(parsed)}, {})

    async def _query(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        top_k = body.get("topK")
        if not isinstance(top_k, int) or top_k < 1 or top_k > 10000:
            return self._error_response(400, "topK must be an integer between 1 and 10000.")
        namespace = str(body.get("namespace") or "")
        ns = self.namespaces.get(namespace, _Namespace())
        has_vector, has_id = body.get("vector") is not None, body.get("id") is not None
        if has_vector == has_id:
            return self._error_response(400, "Exactly one of 'vector' or 'id' must be given.")
        if has_id:
            query = ns.vectors.get(str(body["id"]))
            if query is None:
                query = np.zeros(self.dimension or 1, dtype=np.float32)
                ids: list[str] = []
            else:
                ids = list(ns.vectors)
        else:
            vec = self._vector(body["vector"])
            if isinstance(vec, str):
                return self._error_response(400, vec)
            query, ids = vec, list(ns.vectors)
        flt = body.get("filter")
        try:
            ids = [i for i in ids if matches_filter(ns.metadata.get(i), flt)]
        except ValueError as e:
            return self._error_response(400, f"Invalid filter: {e}")
        await asyncio.sleep(self.profile.delay(self.profile.rag_query_secs))
        matches: list[dict[str, Any]] = []
        if ids:
            matrix = np.stack([ns.vectors[i] for i in ids])
            scores = self._scores(matrix, query)
            order = np.argsort(scores if self.metric == "euclidean" else -scores, kind="stable")
            for idx in order[:top_k]:
                vid = ids[int(idx)]
                match: dict[str, Any] = {"id": vid, "score": float(scores[idx]), "values": []}
                if body.get("includeValues"):
                    match["values"] = ns.vectors[vid].tolist()
                if body.get("includeMetadata") and vid in ns.metadata:
                    match["metadata"] = ns.metadata[vid]
                matches.append(match)
        self.queries_total += 1
        read_units = 1 + len(ns.vectors) // 1000
        self.record_of(request).info.update(matches=len(matches), namespace=namespace)
        payload = {"matches": matches, "namespace": namespace, "usage": {"readUnits": read_units}}
        return self._reply(request, payload, {"namespace": namespace})

    async def _describe_stats(self, request: web.Request) -> web.Response:
        body = await self._body(request) if request.method == "POST" else {}
        if isinstance(body, web.Response):
            return body
        flt = body.get("filter")
        try:
            namespaces = {
                name: {
                    "vectorCount": sum(
                        1 for i in ns.vectors if matches_filter(ns.metadata.get(i), flt)
                    )
                }
                for name, ns in self.namespaces.items()
                if ns.vectors
            }
        except ValueError as e:
            return self._error_response(400, f"Invalid filter: {e}")
        payload = {
            "namespaces": namespaces,
            "dimension": self.dimension or 0,
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }
        return self._reply(request, payload, {"namespaces": namespaces})

    async def _delete(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        namespace = str(body.get("namespace") or "")
        ns = self.namespaces.get(namespace)
        deleted = 0
        if ns is not None:
            if body.get("deleteAll"):
                deleted = len(ns.vectors)
                del self.namespaces[namespace]
            elif body.get("ids") is not None:
                for vid in body["ids"]:
                    if ns.vectors.pop(str(vid), None) is not None:
                        deleted += 1
                    ns.metadata.pop(str(vid), None)
            elif body.get("filter"):
                try:
                    doomed = [
                        i for i in ns.vectors if matches_filter(ns.metadata.get(i), body["filter"])
                    ]
                except ValueError as e:
                    return self._error_response(400, f"Invalid filter: {e}")
                for vid in doomed:
                    ns.vectors.pop(vid)
                    ns.metadata.pop(vid, None)
                deleted = len(doomed)
            else:
                return self._error_response(400, "One of ids, deleteAll or filter is required.")
        self.record_of(request).info.update(deleted=deleted, namespace=namespace)
        return self._reply(request, {}, {})

    async def _fetch(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", "")
        ns = self.namespaces.get(namespace, _Namespace())
        vectors = {}
        for vid in request.query.getall("ids", []):
            if vid in ns.vectors:
                entry: dict[str, Any] = {"id": vid, "values": ns.vectors[vid].tolist()}
                if vid in ns.metadata:
                    entry["metadata"] = ns.metadata[vid]
                vectors[vid] = entry
        payload = {
            "vectors": vectors,
            "namespace": namespace,
            "usage": {"readUnits": max(1, math.ceil(len(vectors) / 10))},
        }
        return self._reply(request, payload, {"namespace": namespace})

    async def _update(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        namespace = str(body.get("namespace") or "")
        ns = self.namespaces.get(namespace, _Namespace())
        vid = body.get("id")
        if not isinstance(vid, str) or vid not in ns.vectors:
            return self._error_response(404, f"Vector {vid!r} not found.")
        if body.get("values") is not None:
            vec = self._vector(body["values"])
            if isinstance(vec, str):
                return self._error_response(400, vec)
            ns.vectors[vid] = vec
        if isinstance(body.get("setMetadata"), dict):
            ns.metadata.setdefault(vid, {}).update(body["setMetadata"])
        return self._reply(request, {}, {})

    async def _list(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", "")
        prefix = request.query.get("prefix", "")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return self._error_response(400, "limit must be an integer.")
        ns = self.namespaces.get(namespace, _Namespace())
        ids = sorted(i for i in ns.vectors if i.startswith(prefix))
        token = request.query.get("paginationToken")
        start = int(token) if token and token.isdigit() else 0
        page = ids[start : start + limit]
        payload: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            payload["pagination"] = {"next": str(start + limit)}
        return self._reply(request, payload, {"namespace": namespace})

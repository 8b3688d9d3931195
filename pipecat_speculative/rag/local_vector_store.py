"""A persistent vector store in one append-only JSONL file, searched as a numpy matrix."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from pipecat_speculative.rag.base_retriever import Passage

__all__ = ["LocalVectorStore", "VectorRecord"]

_FILE = "vectors.jsonl"
_LOCK = "vectors.lock"


@dataclass(frozen=True)
class VectorRecord:
    """One chunk to store.

    Parameters:
        id: Stable id; upserting the same id again replaces the record.
        text: The chunk text.
        vector: Its unit embedding.
        metadata: Flat JSON metadata, filterable by equality.
        content_hash: Identifies the content; an upsert of an id with the same hash is skipped,
            which is what makes re-running ingest free.
    """

    id: str
    text: str
    vector: np.ndarray
    metadata: Mapping[str, Any] = field(default_factory=dict)
    content_hash: str = ""


class LocalVectorStore:
    """Exact cosine search over an embedded, persistent store: no server, safe across processes.

    Layout: ``DIR/vectors.jsonl``, one JSON object per line, appended to and never edited in
    place: a record ``{"id", "text", "metadata", "hash", "model", "vector"}`` (vector as base64
    little-endian float32) or a tombstone ``{"id", "deleted": true}``. The last line for an id
    wins. Writers take an exclusive ``flock`` on ``DIR/vectors.lock`` and append whole lines with
    one ``write`` each, so a reader in another process never sees half a record it would keep
    (a torn last line is skipped until it is complete). :meth:`compact` rewrites the file to a
    temporary name and renames it over the old one, atomically.

    Every query first checks the file: new lines appended by another process are read
    incrementally, a replaced file (compaction) is reloaded in full. Search is an exact matrix
    product over unit vectors (well under a millisecond per 10k chunks), with metadata equality
    filters applied first. Thread-safe: the retrievers call it from worker threads.

    Args:
        directory: Where the store lives (created if missing).
        dimension: Vector length; taken from the first record when None.
        model_id: The embedding model of the vectors; a record of another model is refused,
            since its vectors would be compared in the wrong space.
    """

    def __init__(
        self, directory: str | Path, *, dimension: int | None = None, model_id: str | None = None
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dimension = dimension
        self.model_id = model_id
        self._path = self.directory / _FILE
        self._lock_path = self.directory / _LOCK
        self._mutex = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._offset = 0
        self._inode: int | None = None
        self._matrix: np.ndarray | None = None
        self._ids: list[str] = []
        self.refresh()

    def __str__(self) -> str:
        return f"LocalVectorStore({self.directory})"

    def __len__(self) -> int:
        with self._mutex:
            self.refresh()
            return len(self._records)

    # ------------------------------------------------------------------ reading

    def refresh(self) -> bool:
        """Read what other processes appended (or reload a compacted file).

        Returns:
            Whether anything changed.
        """
        with self._mutex:
            try:
                stat = self._path.stat()
            except FileNotFoundError:
                return False
            if self._inode != stat.st_ino or stat.st_size < self._offset:
                self._records.clear()
                self._vectors.clear()
                self._offset = 0
                self._inode = stat.st_ino
            if stat.st_size == self._offset:
                return False
            with open(self._path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a torn last line waits for its newline
            for line in data[:end].splitlines():
                if line.strip():
                    self._apply(json.loads(line))
            self._offset += end
            self._matrix = None
            return end > 0

    def _apply(self, entry: dict[str, Any]) -> None:
        vid = entry["id"]
        if entry.get("deleted"):
            self._records.pop(vid, None)
            self._vectors.pop(vid, None)
            return
        vector = np.frombuffer(base64.b64decode(entry["vector"]), dtype="<f4").astype(np.float32)
        if self.dimension is None:
            self.dimension = len(vector)
        model = entry.get("model")
        if model and self.model_id is None:
            self.model_id = model
        elif model and model != self.model_id:
            raise ValueError(f"{self}: holds vectors of {model}, not of {self.model_id}")
        self._records[vid] = entry
        self._vectors[vid] = vector

    def get(self, vid: str) -> Passage | None:
        """The stored chunk with id ``vid`` (score 1.0), or None."""
        with self._mutex:
            self.refresh()
            entry = self._records.get(vid)
            if entry is None:
                return None
            return Passage(id=vid, text=entry["text"], score=1.0, metadata=entry["metadata"])

    def ids(self) -> list[str]:
        """Every stored id, sorted."""
        with self._mutex:
            self.refresh()
            return sorted(self._records)

    def content_hash(self, vid: str) -> str | None:
        """The content hash stored for ``vid`` (None if absent)."""
        with self._mutex:
            self.refresh()
            entry = self._records.get(vid)
            return None if entry is None else entry.get("hash")

    def query(
        self, vector: np.ndarray, *, top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[Passage]:
        """The ``top_k`` records closest to ``vector`` (cosine), best first.

        Args:
            vector: A unit query vector of the store's dimension.
            top_k: How many at most.
            filter: Metadata equality, ``{"field": value}``; a list-valued field matches when
                any element equals the value. Records missing the field never match.
        """
        with self._mutex:
            self.refresh()
            if not self._records or top_k <= 0:
                return []
            matrix, ids = self._search_matrix()
            if len(vector) != matrix.shape[1]:
                raise ValueError(
                    f"query dimension {len(vector)} does not match the store's {matrix.shape[1]}"
                )
            rows = np.arange(len(ids))
            if filter:
                rows = np.array(
                    [i for i, vid in enumerate(ids) if _matches(self._records[vid], filter)],
                    dtype=np.int64,
                )
                if rows.size == 0:
                    return []
            scores = matrix[rows] @ np.asarray(vector, dtype=np.float32)
            k = min(top_k, len(rows))
            best = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
            best = best[np.lexsort((best, -scores[best]))]
            out = []
            for i in best:
                entry = self._records[ids[rows[i]]]
                out.append(
                    Passage(
                        id=entry["id"],
                        text=entry["text"],
                        score=float(scores[i]),
                        metadata=entry["metadata"],
                    )
                )
            return out

    def _search_matrix(self) -> tuple[np.ndarray, list[str]]:
        if self._matrix is None:
            self._ids = sorted(self._vectors)
            self._matrix = np.stack([self._vectors[i] for i in self._ids])
        return self._matrix, self._ids

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def upsert(self, records: Iterable[VectorRecord]) -> int:
        """Store ``records``; an id already stored with the same content hash is skipped.

        Returns:
            How many records were written (0 on an idempotent re-run).
        """
        records = list(records)
        with self._mutex, self._write_lock():
            self.refresh()
            lines = []
            for r in records:
                vector = np.asarray(r.vector, dtype=np.float32).reshape(-1)
                self._check(r, vector)
                old = self._records.get(r.id)
                if old is not None and r.content_hash and old.get("hash") == r.content_hash:
                    continue
                entry = {
                    "id": r.id,
                    "text": r.text,
                    "metadata": dict(r.metadata),
                    "hash": r.content_hash,
                    "model": self.model_id,
                    "vector": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii"),
                }
                lines.append(json.dumps(entry, separators=(",", ":"), ensure_ascii=False))
            self._append(lines)
            return len(lines)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete records by id.

        Returns:
            How many existed.
        """
        with self._mutex, self._write_lock():
            self.refresh()
            present = [i for i in ids if i in self._records]
            self._append([json.dumps({"id": i, "deleted": True}) for i in present])
            return len(present)

    def compact(self) -> None:
        """Rewrite the file with only the live records (atomic rename; readers reload)."""
        with self._mutex, self._write_lock():
            self.refresh()
            tmp = self._path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for vid in sorted(self._records):
                    f.write(
                        json.dumps(self._records[vid], separators=(",", ":"), ensure_ascii=False)
                    )
                    f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
            self._inode = None
            self.refresh()
            logger.debug(f"{self}: compacted to {len(self._records)} records")

    def _check(self, record: VectorRecord, vector: np.ndarray) -> None:
        if self.dimension is None:
            self.dimension = len(vector)
        if len(vector) != self.dimension:
            raise ValueError(
                f"record {record.id!r} has dimension {len(vector)}, the store {self.dimension}"
            )
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"record {record.id!r} has a non-finite vector")

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.refresh()


def _matches(entry: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    metadata = entry.get("metadata") or {}
    for key, wanted in flt.items():
        if key not in metadata:
            return False
        value = metadata[key]
        if isinstance(value, list):
            if wanted not in value:
                return False
        elif value != wanted:
            return False
    return True

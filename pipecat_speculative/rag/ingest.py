"""``pipecat-speculative ingest``: chunk text and markdown files into the local store or Pinecone."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from pipecat_speculative.rag.base_embedder import BaseEmbedder
from pipecat_speculative.rag.local_vector_store import LocalVectorStore, VectorRecord
from pipecat_speculative.rag.pinecone_retriever import PineconeRetriever

__all__ = [
    "DEFAULT_STORE_DIR",
    "SUFFIXES",
    "Chunk",
    "IngestReport",
    "chunk_id",
    "chunk_text",
    "ingest_paths",
    "run_ingest",
    "sample_document",
    "vector_records",
]

DEFAULT_STORE_DIR = Path("rag_store")
"""Where ``ingest`` writes the local store when no ``--store`` is given."""

SUFFIXES = (".md", ".markdown", ".txt")
"""File types ingested when a directory is given."""

_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, ready to embed.

    Parameters:
        id: Stable id: the source, the chunk's position and its content (see :func:`chunk_id`).
        text: The chunk text (its section heading first, so a chunk stands on its own).
        source: The file it came from, as given on the command line.
        index: Position in the file.
        content_hash: sha1 of the text.
    """

    id: str
    text: str
    source: str
    index: int
    content_hash: str

    def metadata(self) -> dict[str, Any]:
        """What is stored with the vector (filterable by ``source``)."""
        return {"source": self.source, "chunk": self.index}


@dataclass
class IngestReport:
    """What one ingest run did.

    Parameters:
        files: Files read.
        chunks: Chunks those files make.
        written: Chunks embedded and written (0 on a re-run over unchanged files).
        unchanged: Chunks already stored with the same content, skipped.
        deleted: Stale chunks removed (a file's old chunks after it changed).
        errors: ``(path, message)`` for every file that could not be read or stored; the
            files before and after it are still ingested.
    """

    files: int = 0
    chunks: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _source_key(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]


def chunk_id(source: str, index: int, text: str) -> str:
    """``<source hash>-<index>-<content hash>``: the same file and text always give the same id.

    A re-run over an unchanged file finds every id already stored and writes nothing; a chunk
    whose text changed gets a new id, and the old one is deleted as stale. The source prefix
    lets a backend list one file's chunks (Pinecone's ``list(prefix=...)``).
    """
    content = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return f"{_source_key(source)}-{index:04d}-{content}"


def _paragraphs(text: str) -> Iterable[tuple[str, str]]:
    """``(heading, paragraph)`` pairs; a heading line starts a new section."""
    heading = ""
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln.rstrip() for ln in block.strip().splitlines() if ln.strip()]
        body: list[str] = []
        for line in lines:
            match = _HEADING.match(line)
            if match:
                if body:
                    yield heading, " ".join(body)
                    body = []
                heading = match.group(1).strip()
            else:
                body.append(line.strip())
        if body:
            yield heading, " ".join(body)


def _pieces(paragraph: str, max_chars: int) -> Iterable[str]:
    """A paragraph cut at sentence ends to at most ``max_chars`` (a longer sentence is cut)."""
    if len(paragraph) <= max_chars:
        yield paragraph
        return
    current = ""
    for sentence in _SENTENCE.split(paragraph):
        while len(sentence) > max_chars:
            if current:
                yield current
                current = ""
            yield sentence[:max_chars]
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            yield current
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        yield current


def chunk_text(text: str, *, source: str, max_chars: int = 700) -> list[Chunk]:
    """Cut a text or markdown document into chunks of whole paragraphs, at most ``max_chars``.

    Paragraphs of one section are packed together; a section heading starts a new chunk and
    is repeated at the start of each of its chunks, so a retrieved chunk says what it is
    about. 700 characters is ~150 tokens, well inside MiniLM's 256-token window (text past it
    would be ignored by the embedding).
    """
    chunks: list[str] = []
    current, current_heading = "", None
    for heading, paragraph in _paragraphs(text):
        for piece in _pieces(paragraph, max_chars - len(heading) - 2):
            prefix = f"{heading}: " if heading else ""
            if (
                current
                and heading == current_heading
                and len(current) + 1 + len(piece) <= max_chars
            ):
                current = f"{current} {piece}"
                continue
            if current:
                chunks.append(current)
            current, current_heading = prefix + piece, heading
    if current:
        chunks.append(current)
    return [
        Chunk(
            id=chunk_id(source, i, body),
            text=body,
            source=source,
            index=i,
            content_hash=hashlib.sha1(body.encode("utf-8")).hexdigest(),
        )
        for i, body in enumerate(chunks)
    ]


def _expand(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES))
        else:
            files.append(path)
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OSError(f"not UTF-8 text ({e.reason} at byte {e.start})") from e


async def _existing_ids(target: LocalVectorStore | PineconeRetriever, source: str) -> set[str]:
    prefix = _source_key(source) + "-"
    if isinstance(target, LocalVectorStore):
        return {i for i in await asyncio.to_thread(target.ids) if i.startswith(prefix)}
    ids: set[str] = set()

    def listing() -> None:
        # SDK 10 yields pages (``ListResponse.vectors``); older SDKs yielded lists of ids.
        for page in target.index.list(prefix=prefix, namespace=target.namespace):
            for item in getattr(page, "vectors", page):
                ids.add(str(getattr(item, "id", item)))

    await asyncio.to_thread(listing)
    return ids


async def _store(target: LocalVectorStore | PineconeRetriever, records: list[VectorRecord]) -> int:
    if isinstance(target, LocalVectorStore):
        return await asyncio.to_thread(target.upsert, records)
    return await target.upsert(records)


async def _delete(target: LocalVectorStore | PineconeRetriever, ids: list[str]) -> int:
    if not ids:
        return 0
    if isinstance(target, LocalVectorStore):
        return await asyncio.to_thread(target.delete, ids)
    await asyncio.to_thread(target.index.delete, ids=ids, namespace=target.namespace)
    return len(ids)


def vector_records(chunks: Sequence[Chunk], vectors: np.ndarray) -> list[VectorRecord]:
    """One record per chunk with its embedding (``vectors[i]`` is ``chunks[i]``'s)."""
    return [
        VectorRecord(
            id=c.id,
            text=c.text,
            vector=vectors[i],
            metadata=c.metadata(),
            content_hash=c.content_hash,
        )
        for i, c in enumerate(chunks)
    ]


async def _ingest_file(
    path: Path,
    *,
    target: LocalVectorStore | PineconeRetriever,
    embedder: BaseEmbedder,
    report: IngestReport,
    max_chars: int,
) -> None:
    source = path.as_posix()
    chunks = chunk_text(await asyncio.to_thread(_read, path), source=source, max_chars=max_chars)
    report.files += 1
    report.chunks += len(chunks)
    existing = await _existing_ids(target, source)
    new = [c for c in chunks if c.id not in existing]
    report.unchanged += len(chunks) - len(new)
    if new:
        records = vector_records(new, await embedder.embed([c.text for c in new]))
        await _store(target, records)
        report.written += len(new)
    keep = {c.id for c in chunks}
    report.deleted += await _delete(target, sorted(existing - keep))


async def ingest_paths(
    paths: Sequence[Path],
    *,
    target: LocalVectorStore | PineconeRetriever,
    embedder: BaseEmbedder,
    max_chars: int = 700,
    progress: bool = False,
) -> IngestReport:
    """Chunk, embed and store every file (directories: their .md/.markdown/.txt files).

    Idempotent: unchanged chunks are found by id and skipped; a file's chunks that are no
    longer in it are deleted. A file that cannot be read or stored is reported in
    ``errors`` and the others are still ingested; what was stored before it stays stored.

    Args:
        paths: Files or directories.
        target: The local store or a Pinecone retriever (its index and namespace).
        embedder: Embeds the chunks; the retriever must later use the same model.
        max_chars: Chunk size limit.
        progress: Show a rich progress bar.
    """
    files = _expand(paths)
    report = IngestReport()
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
    try:
        task = bar.add_task("ingesting", total=len(files)) if bar is not None else None
        for path in files:
            if bar is not None and task is not None:
                bar.update(task, description=f"ingesting {path.name}")
            try:
                await _ingest_file(
                    path, target=target, embedder=embedder, report=report, max_chars=max_chars
                )
            except (OSError, RuntimeError, ValueError) as e:
                message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                logger.warning(f"ingest: {path}: {message}")
                report.errors.append((str(path), message))
            if bar is not None and task is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return report


def sample_document() -> Path:
    """The bundled sample document (the "omni dimension" proposal)."""
    return Path(__file__).parent / "data" / "omni_dimension_proposal.md"


def run_ingest(
    paths: Sequence[Path],
    *,
    store: Path | None = None,
    pinecone_index: str | None = None,
    namespace: str = "",
    api_key: str | None = None,
    progress: bool = True,
) -> int:
    """The ``ingest`` command: ingest, print a summary, return the exit code (1 on any error)."""
    from rich.console import Console

    from pipecat_speculative.rag.local_embedder import LocalEmbedder

    console = Console(stderr=True)
    embedder = LocalEmbedder()
    target: LocalVectorStore | PineconeRetriever
    if pinecone_index:
        target = PineconeRetriever(
            embedder=embedder, host=pinecone_index, api_key=api_key, namespace=namespace
        )
        where = f"Pinecone {pinecone_index} namespace {namespace!r}"
    else:
        directory = store or DEFAULT_STORE_DIR
        target = LocalVectorStore(directory, model_id=embedder.model_id)
        where = f"local store {directory}"
    report = asyncio.run(ingest_paths(paths, target=target, embedder=embedder, progress=progress))
    console.print(
        f"{where}: {report.files} files, {report.chunks} chunks: {report.written} written, "
        f"{report.unchanged} unchanged, {report.deleted} stale deleted"
    )
    for path, message in report.errors:
        console.print(f"[red]error[/red]: could not ingest {path}: {message}")
    if report.errors:
        console.print(
            f"{len(report.errors)} file(s) failed; everything else was ingested and kept."
        )
    return 1 if report.errors else 0

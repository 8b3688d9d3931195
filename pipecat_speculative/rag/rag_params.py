"""Tuning of the RAG processors: a small validated params object with defended defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RAGParams"]


@dataclass(frozen=True)
class RAGParams:
    """How retrieval feeds the LLM.

    Parameters:
        top_k: Passages per query. Three short chunks answer most spoken questions and keep
            the prompt (and the LLM's time to first token) small.
        filter: Metadata filter for every query (``{"field": value}``); None searches all.
        budget_secs: The longest an inference waits for its retrieval, counted from when its
            context reaches the processor. Past it the inference runs without passages (with a
            warning): a bot that answers late without the knowledge base beats one that hangs.
            1 s covers Pinecone serverless's p99 (~0.35 s) with room for the embedding call.
        cache_ttl_secs: How long a finished result is reused for the same normalized query.
            A speculation and its commit are seconds apart; a minute also covers a repeated
            question without serving a stale answer after the documents change.
        cache_max_entries: Results kept at most (oldest finished evicted first). Bounded so a
            long session cannot grow the processor without limit.
        prefetch_debounce_secs: Transcript text must stay unchanged this long before a prefetch
            starts, so a retrieval is not started for every interim word. None disables
            prefetch.
        prefetch_min_words: Shorter transcripts ("um", "yes") are not prefetched.
        passages_role: Role of the injected passages message. ``developer`` (the default) is
            what Pipecat 1.14 asks for supplementary guidance in a context: OpenAI keeps it
            apart from what the user said, and adapters without the role (Anthropic, Bedrock,
            Gemini past the first message) turn it into a user message. ``system`` is deprecated
            as a context message by Pipecat and, on the first turn (when the passages are the
            context's first message), is taken for the system prompt: the OpenAI adapter warns,
            and adapters that take the system instruction as a parameter drop it when the
            service has one, passages included. ``user`` for an API with no other choice.
        max_passage_chars: Each passage is cut to this length in the prompt.
        warmup_timeout_secs: At setup the retriever warms up (loads its model, opens its
            connection) for at most this long; a slow warmup is left to finish on first use.
    """

    top_k: int = 3
    filter: Mapping[str, Any] | None = None
    budget_secs: float = 1.0
    cache_ttl_secs: float = 60.0
    cache_max_entries: int = 64
    prefetch_debounce_secs: float | None = 0.15
    prefetch_min_words: int = 2
    passages_role: str = "developer"
    max_passage_chars: int = 1500
    warmup_timeout_secs: float = 5.0

    def __post_init__(self):
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.budget_secs <= 0:
            raise ValueError("budget_secs must be positive")
        if self.cache_ttl_secs < 0 or self.cache_max_entries < 1:
            raise ValueError("cache_ttl_secs must be >= 0 and cache_max_entries >= 1")
        if self.prefetch_debounce_secs is not None and self.prefetch_debounce_secs < 0:
            raise ValueError("prefetch_debounce_secs must be >= 0 or None")
        if self.passages_role not in ("system", "developer", "user"):
            raise ValueError("passages_role must be system, developer or user")
        if self.max_passage_chars < 1 or self.warmup_timeout_secs < 0:
            raise ValueError("max_passage_chars must be >= 1 and warmup_timeout_secs >= 0")

"""``pipecat-speculative bench``: stock vs Pipecat's eager Flux vs this plugin, same audio, same profile.

Every system hears the same rendered scenarios (Piper speech, real pauses, real time) through the
same real Pipecat services, each system against its own set of stand-ins on the same latency
profile (so connection reuse and billing are per system, and the three run side by side without
sharing a socket). Systems, and ``--sessions`` copies of each, run concurrently in one process;
``--quick`` also runs its two scenarios concurrently.

What is measured comes from the turn timing observer (the only stopwatch) and from the scenario's
ground truth:

- ``latency_ms``: t0 (VAD stop − stop_secs) → bot audio plays, over the turns that answered a
  finished user (a commit inside a pause the user went on after is a false commit, scored
  separately); ``_rag`` / ``_plain`` split by the scenario's ``needs_rag`` (a needs-RAG turn
  counts as a RAG turn only when its record shows retrieval delivered, ``rag_done`` or
  ``rag_skip``; else it is in ``_rag_unretrieved``);
  ``first_turn`` / ``later_turn`` by position in the session; ``withdrawal_turn``: turns where at
  least one speculation was withdrawn.
- ``cancel_rate``: withdrawn / resolved speculations (tool-call withdrawals excluded).
- ``wasted_llm_tokens_per_turn``: tokens billed for inferences nobody heard, per committed turn:
  usage the LLM reported for withdrawn speculations, plus, for streams the client abandoned
  before the usage chunk (the usual fate of a cancelled OpenAI stream), the prompt tokens and the
  completion tokens the stand-in had sent, as its billing records say.
- ``false_commit_rate``: committed turns whose commit came while the scenario says the user was
  not done (in a pause that is not the last of the turn, or during a later segment; a commit
  within :data:`FALSE_COMMIT_TOLERANCE_SECS` of the true end does not count) / committed turns.
- ``answers_per_committed_turn``: distinct answers that reached the output / committed turns.
- ``limit_ms`` (top level): what the profile allows at best: VAD stop + LLM first sentence + TTS
  first audio, or the earliest commit when later.

- ``rag``: every system retrieves on every turn from the sample document, through the real
  pinecone SDK against a Pinecone stand-in on the profile's ``rag_query_secs``
  (:mod:`pipecat_speculative.bench_rag`): ``stock`` and ``eager_flux`` serially, inside
  ``process_frame``, for every context (for ``eager_flux`` the eager context is the answer), the
  plugin's systems with the parallel processor. The block counts retrievals started, joined,
  reused, contexts dropped, timeouts and errors, per committed turn, and the backend calls per
  distinct query. The top-level ``rag`` block says how, and (without ``--quick``) the local
  store's query latency at 10k chunks.

The bot's answers play at ``playback_speed`` (2.5× by default): the stand-in's answers are long,
and the latency (to the first audio) does not depend on how fast the rest plays.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from rich.console import Console
from rich.table import Table

from pipecat_speculative.bench_rag import (
    RecordingRetriever,
    RetrievalCall,
    SampleKnowledgeBase,
    add_rag_rows,
    local_store_latency,
    rag_available,
    rag_block,
    widen_default_executor,
)
from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord
from pipecat_speculative.offline_session import SessionResult, run_scenario_session
from pipecat_speculative.pipeline_builder import BotPipelineConfig, SystemKind
from pipecat_speculative.rag.rag_config import RAGConfig
from pipecat_speculative.scenarios.player import RenderedScenario, TurnPlayback, render_scenario
from pipecat_speculative.scenarios.scenario import (
    Scenario,
    load_builtin_scenario,
    load_builtin_suite,
    load_scenarios,
)
from pipecat_speculative.standins.profile import BENCH_PROFILE_NAMES, LatencyProfile
from pipecat_speculative.standins.standin_stack import StandinStack

__all__ = [
    "BENCH_SYSTEMS",
    "FALSE_COMMIT_TOLERANCE_SECS",
    "BenchOptions",
    "ScoredTurn",
    "limit_ms",
    "bench_profiles",
    "print_bench_document",
    "print_bench_table",
    "quick_scenarios",
    "run_bench",
    "score_session",
    "score_sessions",
    "write_bench_json",
]

BENCH_SYSTEMS: tuple[SystemKind, ...] = (
    SystemKind.STOCK,
    SystemKind.EAGER_FLUX,
    SystemKind.SPECULATIVE,
    SystemKind.SPECULATIVE_TTS,
)
"""The systems compared, in table order (``stock`` is the baseline of the ratios)."""

FIRST_SENTENCE_TOKENS = 9.5
"""Tokens streamed after the first one until the first sentence is released: the stand-in's
answers open with a sentence of ~38 characters (≈ 9.5 estimated tokens), and the sentence
aggregator releases it when the next word arrives."""

FALSE_COMMIT_TOLERANCE_SECS = 0.15
"""A commit less than this before the true end of the last segment is an end of turn predicted on
the last word (an STT like Flux with no end-of-turn delay fires at the last word's end, which can
precede the audio's trailing samples by a few ms), not a cut-in: it is not a false commit."""

LATENCY_FIELDS: tuple[str, ...] = (
    "latency_ms",
    "latency_ms_rag",
    "latency_ms_rag_unretrieved",
    "latency_ms_plain",
    "first_turn_latency_ms",
    "later_turn_latency_ms",
    "withdrawal_turn_latency_ms",
)
"""The {p50, p95} fields of each system."""


_LATENCY_LABELS = {
    "latency_ms": "latency",
    "latency_ms_rag": "  RAG turns",
    "latency_ms_rag_unretrieved": "  RAG turns (no retrieval)",
    "latency_ms_plain": "  plain turns",
    "first_turn_latency_ms": "  first turn",
    "later_turn_latency_ms": "  later turns",
    "withdrawal_turn_latency_ms": "  withdrawal turns",
}


@dataclass
class BenchOptions:
    """What to run.

    Parameters:
        scenarios_dir: A directory of scenario YAML files; the built-in suite when None.
        profile_path: One latency profile (a name or a file), kept for callers of the first
            version; ``profiles`` wins when both are given.
        profiles: Latency profiles (names or files), one table each, run one after the other.
            None: the three service classes (reference, slow, fast), or reference alone with
            ``quick``.
        sessions: Concurrent sessions per system.
        quick: A subset that finishes in under a minute (see :func:`quick_scenarios`).
        json_path: Where to write the JSON results.
        warm: Warm connections before the first turn (when the warm services exist).
        playback_speed: Speed of the bot's playback (first audio is timed exactly either way).
        systems: Which systems to run.
        rag: Retrieve on every turn (the sample document, Pinecone stand-in); off, or without
            the ``rag`` and ``pinecone`` extras, no system retrieves.
        store_latency: Measure the local store's query latency at 10k chunks once (not with
            ``quick``).
    """

    scenarios_dir: Path | None = None
    profile_path: Path | str | None = None
    profiles: Sequence[Path | str] | None = None
    sessions: int = 1
    quick: bool = False
    json_path: Path | None = None
    warm: bool = True
    playback_speed: float = 2.5
    systems: Sequence[SystemKind] = BENCH_SYSTEMS
    rag: bool = True
    store_latency: bool = True


@dataclass
class ScoredTurn:
    """A committed turn of one session, with its ground truth.

    Parameters:
        record: The observer's record.
        scenario_turn: Index of the scenario turn it belongs to (None if it could not be placed).
        needs_rag: The scenario turn needs retrieval.
        false_commit: Committed while the user was not done.
    """

    record: TurnRecord
    scenario_turn: int | None
    needs_rag: bool
    false_commit: bool


@dataclass
class _SystemRun:
    system: SystemKind
    results: list[SessionResult] = field(default_factory=list)
    stacks: list[StandinStack] = field(default_factory=list)
    retrievals: dict[str, list[RetrievalCall]] = field(default_factory=dict)


def quick_scenarios() -> list[Scenario]:
    """The ``--quick`` subset, played concurrently.

    A plain one-sentence question (with its greeting), and the reference conversation's
    thinking-aloud turn followed by its RAG question (without the greeting).
    """
    reference = load_builtin_scenario("reference_conversation")
    part = replace(reference, name="reference_conversation[1:3]", turns=reference.turns[1:3])
    return [load_builtin_scenario("one_sentence_question"), part]


def limit_ms(profile: LatencyProfile, vad_stop_secs: float = 0.2) -> dict[str, float]:
    """The best latency the profile allows, end of speech → first audio, in ms.

    VAD stop + LLM first sentence (time to first token plus :data:`FIRST_SENTENCE_TOKENS`) + TTS
    first audio on warm connections, or the earliest commit (VAD stop + final transcript) when
    that is later. p95 applies the profile's jitter at its 95th percentile to every stage (an
    upper bound of the sum's p95).
    """
    pipeline = (
        vad_stop_secs
        + profile.llm_ttft_secs
        + FIRST_SENTENCE_TOKENS / profile.llm_tokens_per_sec
        + profile.tts_first_audio_secs
    )
    commit = vad_stop_secs + profile.stt_final_delay_secs
    p50 = max(pipeline, commit)
    spread = 1.0 + 0.9 * profile.jitter
    p95 = max(vad_stop_secs + (pipeline - vad_stop_secs) * spread, commit * spread)
    return {"p50": round(p50 * 1000, 1), "p95": round(p95 * 1000, 1)}


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _commit_unix(record: TurnRecord) -> float | None:
    commit = record.moment("commit")
    if record.anchor_unix is None or commit is None:
        return None
    return record.anchor_unix + commit / 1000.0


def _place(commit: float, playbacks: Sequence[TurnPlayback]) -> int | None:
    """Index of the user turn a commit belongs to: the last one that started before it."""
    index = None
    for i, p in enumerate(playbacks):
        if p.wall_start <= commit:
            index = i
    return index


def _user_done_at(playback: TurnPlayback) -> float:
    """Wall-clock end of the turn's last segment (projected while it is still being spoken)."""
    if len(playback.segment_end_wall) == len(playback.turn.segments):
        return playback.segment_end_wall[-1]
    return playback.wall_start + playback.turn.speech_end_secs


def score_session(result: SessionResult) -> list[ScoredTurn]:
    """Place each committed turn of a session in the scenario and judge its commit."""
    scored = []
    for record in result.records:
        commit = _commit_unix(record)
        index = _place(commit, result.playbacks) if commit is not None else None
        if index is None:
            scored.append(ScoredTurn(record, None, False, False))
            continue
        playback = result.playbacks[index]
        false_commit = (
            commit is not None and commit < _user_done_at(playback) - FALSE_COMMIT_TOLERANCE_SECS
        )
        scored.append(ScoredTurn(record, index, playback.turn.turn.needs_rag, false_commit))
    return scored


def _p(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = (round(float(v), 1) for v in np.percentile(list(values), [50, 95]))
    return {"p50": p50, "p95": p95, "n": len(values)}  # type: ignore[dict-item]


def _standin_waste(stacks: Sequence[StandinStack]) -> tuple[int, int]:
    """Tokens the OpenAI stand-ins billed for streams the client abandoned, and how many."""
    tokens = 0
    count = 0
    for stack in stacks:
        for request in stack.openai.requests:
            info = request.info
            if request.path.endswith("/chat/completions") and info.get("client_disconnected"):
                count += 1
                tokens += int(info.get("prompt_tokens") or 0)
                tokens += int(info.get("completion_tokens_sent") or 0)
    return tokens, count


def score_sessions(
    results: Sequence[SessionResult], stacks: Sequence[StandinStack] = ()
) -> dict[str, Any]:
    """The JSON block of one system from its sessions (and its stand-ins' billing records)."""
    scored = [t for r in results for t in score_session(r)]
    summaries: list[SessionSummary] = [r.summary for r in results if r.summary is not None]
    committed = len(scored)

    def totals(turns: Sequence[ScoredTurn]) -> list[float]:
        return [
            total
            for t in turns
            if not t.false_commit and (total := t.record.stage("total")) is not None
        ]

    answering = [t for t in scored if not t.false_commit]
    adopted = sum(s.speculations_adopted for s in summaries)
    withdrawn = sum(s.speculations_withdrawn for s in summaries)
    tool_calls = sum(s.tool_call_withdrawals for s in summaries)
    resolved = adopted + withdrawn - tool_calls
    reported_waste = sum(s.wasted_prompt_tokens + s.wasted_completion_tokens for s in summaries)
    abandoned_tokens, abandoned = _standin_waste(stacks)
    answers = sum(t.record.answers for t in scored)
    retrieval_ran = any(_retrieved(t) for t in scored)

    def stage_p50(name: str) -> float | None:
        values = [v for t in answering if (v := t.record.stage(name)) is not None]
        return round(float(np.median(values)), 1) if values else None

    return {
        "latency_ms": _p(totals(answering)),
        "latency_ms_rag": _p(totals([t for t in answering if t.needs_rag and _retrieved(t)])),
        "latency_ms_rag_unretrieved": _p(
            totals([t for t in answering if t.needs_rag and not _retrieved(t)])
        ),
        "retrieval_ran": retrieval_ran,
        "latency_ms_plain": _p(totals([t for t in answering if not t.needs_rag])),
        "first_turn_latency_ms": _p(totals([t for t in answering if t.scenario_turn == 0])),
        "later_turn_latency_ms": _p(
            totals([t for t in answering if t.scenario_turn not in (0, None)])
        ),
        "withdrawal_turn_latency_ms": _p(
            totals([t for t in answering if t.record.speculations_withdrawn > 0])
        ),
        "cancel_rate": round((withdrawn - tool_calls) / resolved, 3) if resolved else None,
        "wasted_llm_tokens_per_turn": (
            round((reported_waste + abandoned_tokens) / committed, 1) if committed else None
        ),
        "wasted_tts_characters_per_turn": (
            round(sum(s.wasted_tts_characters for s in summaries) / committed, 1)
            if committed
            else None
        ),
        "false_commit_rate": (
            round(sum(1 for t in scored if t.false_commit) / committed, 3) if committed else None
        ),
        "answers_per_committed_turn": round(answers / committed, 3) if committed else None,
        "committed_turns": committed,
        "user_turns": sum(len(r.playbacks) for r in results),
        "unanswered_user_turns": sum(
            1 for r in results for p in r.playbacks if p.bot_answered is False
        ),
        "silent_turns": sum(1 for t in scored if t.record.answers == 0),
        "multi_answer_turns": sum(1 for t in scored if t.record.answers > 1),
        "speculations": {
            "started": sum(s.speculations_started for s in summaries),
            "adopted": adopted,
            "withdrawn": withdrawn,
            "tool_call_withdrawals": tool_calls,
        },
        "wasted_tokens": {
            "reported_by_llm": reported_waste,
            "abandoned_streams": abandoned,
            "abandoned_stream_tokens": abandoned_tokens,
        },
        "debounce_changes": [
            {
                "session": s.session_id,
                "old_ms": round(d.old_secs * 1000, 1),
                "new_ms": round(d.new_secs * 1000, 1),
                "reason": d.reason,
            }
            for s in summaries
            for d in s.debounce_history
        ],
        "debounce": [_debounce_block(r) for r in results if r.debounce is not None],
        "stages_p50_ms": {
            name: stage_p50(name)
            for name in ("turn_detection", "llm_first_token", "first_sentence", "tts_first_audio")
        },
        "warm": any(r.warm_available for r in results),
        "sessions": len(results),
        "wall_secs": round(max((r.wall_secs for r in results), default=0.0), 1),
    }


def _retrieved(turn: ScoredTurn) -> bool:
    """Retrieval delivered to this turn's answer: done for it, or a finished result reused."""
    return turn.record.moment("rag_done") is not None or turn.record.moment("rag_skip") is not None


def _debounce_block(result: SessionResult) -> dict[str, Any]:
    """The debounce of one session: where it started and ended, every change, its window rate."""
    state = result.debounce
    assert state is not None
    summary = result.summary
    changes = list(state.changes)
    return {
        "scenario": result.scenario_name,
        "start_ms": round((changes[0].old_secs if changes else state.delay_secs) * 1000, 1),
        "end_ms": round(state.delay_secs * 1000, 1),
        "trajectory_ms": [round(c.new_secs * 1000, 1) for c in changes],
        "window_cancel_rate": (
            None if state.window_cancel_rate is None else round(state.window_cancel_rate, 3)
        ),
        "window_samples": state.samples,
        "session_cancel_rate": (
            None
            if summary is None or summary.cancel_rate is None
            else round(summary.cancel_rate, 3)
        ),
        "pinned_reason": state.pinned_reason,
        "reasons": [c.reason for c in changes],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _targets(systems: dict[str, Any], limit: dict[str, float]) -> dict[str, Any]:
    spec = systems.get(SystemKind.SPECULATIVE.value)
    stock = systems.get(SystemKind.STOCK.value)
    eager = systems.get(SystemKind.EAGER_FLUX.value)
    out: dict[str, Any] = {}
    if spec and stock:
        r = _ratio(spec["later_turn_latency_ms"]["p50"], stock["later_turn_latency_ms"]["p50"])
        out["speculative_later_turns_p50_vs_stock"] = {
            "value": r,
            "target": "<= 0.7",
            "met": _le(r, 0.7),
        }
    if spec:
        r50 = _ratio(spec["latency_ms"]["p50"], limit["p50"])
        r95 = _ratio(spec["latency_ms"]["p95"], limit["p95"])
        out["speculative_p50_vs_limit"] = {"value": r50, "target": "<= 1.05", "met": _le(r50, 1.05)}
        out["speculative_p95_vs_limit"] = {"value": r95, "target": "<= 1.2", "met": _le(r95, 1.2)}
    if spec and eager:
        ratios = {
            name: _ratio(spec[name]["p50"], eager[name]["p50"])
            for name in (
                "first_turn_latency_ms",
                "later_turn_latency_ms",
                "withdrawal_turn_latency_ms",
            )
        }
        fewer = (
            spec["false_commit_rate"] is not None
            and eager["false_commit_rate"] is not None
            and spec["false_commit_rate"] <= eager["false_commit_rate"]
        )
        out["speculative_vs_eager_flux"] = {
            "p50_ratios": ratios,
            "false_commit_rates": [spec["false_commit_rate"], eager["false_commit_rate"]],
            "target": "p50 <= eager_flux on first, later and withdrawal turns, fewer false commits",
            "met": all(_le(r, 1.0) is not False for r in ratios.values()) and fewer,
        }
    spec_tts = systems.get(SystemKind.SPECULATIVE_TTS.value)
    if spec_tts:
        r = _ratio(spec_tts["latency_ms"]["p50"], limit["p50"])
        out["speculative_tts_p50_vs_limit"] = {"value": r, "target": "<= 1.02", "met": _le(r, 1.02)}
    if spec_tts and spec:
        r = _ratio(spec_tts["latency_ms"]["p50"], spec["latency_ms"]["p50"])
        out["speculative_tts_p50_vs_speculative"] = {
            "value": r,
            "target": "<= 1.0",
            "met": _le(r, 1.0),
        }
    if spec:
        out["speculative_false_commits_0"] = {
            "value": spec["false_commit_rate"],
            "target": "== 0",
            "met": spec["false_commit_rate"] == 0,
        }
    out["answers_per_committed_turn_is_1"] = {
        name: s["answers_per_committed_turn"] == 1.0 for name, s in systems.items()
    }
    return out


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


async def _run_system(
    system: SystemKind,
    rendered: Sequence[RenderedScenario],
    profile: LatencyProfile,
    options: BenchOptions,
    *,
    concurrent_scenarios: bool,
    knowledge: SampleKnowledgeBase | None = None,
) -> _SystemRun:
    run = _SystemRun(system)
    stack = StandinStack(replace(profile), pinecone=knowledge is not None)
    run.stacks.append(stack)
    config = BotPipelineConfig(system=system, warm=options.warm, log_turns=False)
    async with stack:
        retriever = (
            await knowledge.pinecone_retriever(stack.pinecone)
            if knowledge is not None and stack.pinecone is not None
            else None
        )

        async def one_session(scenario: RenderedScenario) -> SessionResult:
            if retriever is None:
                return await run_scenario_session(
                    scenario, stack, config, playback_speed=options.playback_speed
                )
            recording = RecordingRetriever(retriever)
            session_config = replace(config, rag=RAGConfig(retriever=recording))
            result = await run_scenario_session(
                scenario, stack, session_config, playback_speed=options.playback_speed
            )
            run.retrievals[result.session_id] = recording.calls
            return result

        async def sessions_of(scenario: RenderedScenario) -> list[SessionResult]:
            return list(
                await asyncio.gather(*(one_session(scenario) for _ in range(options.sessions)))
            )

        if concurrent_scenarios:
            for batch in await asyncio.gather(*(sessions_of(s) for s in rendered)):
                run.results.extend(batch)
        else:
            for scenario in rendered:
                run.results.extend(await sessions_of(scenario))
    return run


def bench_profiles(options: BenchOptions) -> list[tuple[str, LatencyProfile]]:
    """The latency profiles a run covers, each with its label, in table order."""
    if options.profiles:
        wanted: Sequence[Path | str] = options.profiles
    elif options.profile_path is not None:
        wanted = [options.profile_path]
    else:
        wanted = ["reference"] if options.quick else list(BENCH_PROFILE_NAMES)
    return [(str(name), LatencyProfile.load(name)) for name in wanted]


async def _run_profile(
    profile: LatencyProfile,
    rendered: Sequence[RenderedScenario],
    options: BenchOptions,
    knowledge: SampleKnowledgeBase | None = None,
) -> dict[str, Any]:
    runs = await asyncio.gather(
        *(
            _run_system(
                s,
                rendered,
                profile,
                options,
                concurrent_scenarios=options.quick,
                knowledge=knowledge,
            )
            for s in options.systems
        )
    )
    systems = {run.system.value: score_sessions(run.results, run.stacks) for run in runs}
    if knowledge is not None:
        for run in runs:
            systems[run.system.value]["rag"] = rag_block(
                run.results, run.retrievals, stacks=run.stacks
            )
    limit = limit_ms(profile)
    return {
        "profile": profile.to_dict(),
        "limit_ms": limit,
        "systems": systems,
        "targets": _targets(systems, limit),
    }


async def run_bench(options: BenchOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the bench on every profile asked for, print a table each, write the JSON if asked.

    Profiles run one after the other (never concurrently: on a small machine the harness, not the
    plugin, would then set the latency), each with fresh stand-ins.

    Args:
        options: What to run.
        console: Where to print.

    Returns:
        The JSON document: the first version's top-level fields describe the first profile, and
        ``profiles`` maps every profile's label to the same fields.
    """
    console = console or Console()
    if options.sessions < 1:
        raise ValueError("sessions must be >= 1")
    started = time.monotonic()
    if options.quick:
        scenarios = quick_scenarios()
    elif options.scenarios_dir is not None:
        scenarios = load_scenarios(options.scenarios_dir)
    else:
        scenarios = load_builtin_suite()
    profiles = bench_profiles(options)
    with console.status("rendering user speech (Piper, cached)"):
        rendered = [await render_scenario(s) for s in scenarios]
    render_secs = time.monotonic() - started
    knowledge, rag_info = await _prepare_rag(options, console)
    console.print(
        f"bench: {len(scenarios)} scenarios ({', '.join(s.name for s in scenarios)}), "
        f"{sum(len(s.turns) for s in scenarios)} user turns, systems "
        f"{', '.join(s.value for s in options.systems)} × {options.sessions} session(s), "
        f"concurrently; profiles {', '.join(name for name, _ in profiles)} one after the "
        f"other; warm {'on' if options.warm else 'off'}; retrieval {rag_info['retriever']}"
    )
    blocks: dict[str, Any] = {}
    for name, profile in profiles:
        with console.status(f"profile {name}: running the conversations in real time"):
            blocks[name] = await _run_profile(profile, rendered, options, knowledge)
    first = next(iter(blocks.values()))
    warm_found = any(s["warm"] for b in blocks.values() for s in b["systems"].values())
    document: dict[str, Any] = {
        "schema": "pipecat-speculative/bench",
        "schema_version": 1,
        "quick": options.quick,
        "scenarios": [s.name for s in scenarios],
        "sessions_per_system": options.sessions,
        "warm": options.warm,
        "warm_services_available": warm_found,
        "playback_speed": options.playback_speed,
        "rag": rag_info,
        **first,
        "profiles": blocks,
        "runtime_secs": {
            "render": round(render_secs, 1),
            "total": round(time.monotonic() - started, 1),
        },
    }
    print_bench_document(document, console)
    write_bench_json(document, options.json_path, console)
    logger.debug(f"bench finished in {document['runtime_secs']['total']} s")
    return document


def write_bench_json(document: dict[str, Any], path: Path | None, console: Console):
    """Write a bench document as indented JSON (nothing when ``path`` is None), and say where."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")


async def _prepare_rag(
    options: BenchOptions, console: Console
) -> tuple[SampleKnowledgeBase | None, dict[str, Any]]:
    """The run's knowledge base (embedded once) and the top-level ``rag`` block.

    The local store's latency at 10k chunks is measured here, before any session runs, so it
    neither slows a session nor is slowed by one.
    """
    if not options.rag:
        return None, {"retriever": "none (--no-rag)"}
    if not rag_available():
        logger.warning("bench: the rag and pinecone extras are not installed; no retrieval runs")
        return None, {"retriever": "none (rag/pinecone extras missing)"}
    widen_default_executor()
    knowledge = SampleKnowledgeBase()
    with console.status("embedding the sample document"):
        records = await knowledge.records()
    info: dict[str, Any] = {
        "retriever": "Pinecone stand-in via the pinecone SDK, local MiniLM embeddings",
        "document": knowledge.documents[0].name,
        "chunks": len(records),
        "serial_systems": [SystemKind.STOCK.value, SystemKind.EAGER_FLUX.value],
        "local_store_latency": None,
    }
    if options.store_latency and not options.quick:
        with console.status("measuring the local store at 10k chunks"):
            info["local_store_latency"] = await local_store_latency(knowledge.embedder)
    return knowledge, info


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_bench_document(document: dict[str, Any], console: Console):
    """Print one table per profile, the speculative debounce of each, and the run time."""
    blocks = document.get("profiles") or {"profile": document}
    for name, block in blocks.items():
        print_bench_table(block, console, profile_name=name)
        print_debounce(block, console)
    latency = (document.get("rag") or {}).get("local_store_latency")
    if latency:
        console.print(
            f"local store at {latency['chunks']:,} chunks: embed + search p50 "
            f"{latency['total_p50_ms']:.1f} ms (embed {latency['embed_p50_ms']:.1f}, search "
            f"{latency['search_p50_ms']:.1f}; reported, not asserted)"
        )
    console.print(
        f"runtime {document['runtime_secs']['total']} s (render {document['runtime_secs']['render']} s); "
        f"warm {'on' if document['warm'] else 'off'}"
        + (
            " (no warm services installed)"
            if document["warm"] and not document["warm_services_available"]
            else ""
        )
    )


def print_debounce(block: dict[str, Any], console: Console):
    """Print the speculative system's debounce per session: trajectory and window cancel rate."""
    spec = block["systems"].get(SystemKind.SPECULATIVE.value)
    if not spec or not spec.get("debounce"):
        return
    lines = []
    for d in spec["debounce"]:
        path = " → ".join(f"{v:.0f}" for v in [d["start_ms"], *d["trajectory_ms"]])
        rate = _fmt_rate(d["window_cancel_rate"])
        line = f"{d['scenario']}: {path} ms; window cancel rate {rate} ({d['window_samples']})"
        if d["pinned_reason"]:
            line += f"; at a bound: {d['pinned_reason']}"
        lines.append(line)
    console.print("speculative debounce per session:\n  " + "\n  ".join(lines))


def print_bench_table(block: dict[str, Any], console: Console, *, profile_name: str = ""):
    """Print the systems side by side, latencies with their ratio to ``stock`` and to the limit."""
    systems: dict[str, Any] = block["systems"]
    limit = block["limit_ms"]
    stock = systems.get(SystemKind.STOCK.value)
    table = Table(
        title=(
            f"profile {profile_name}: end of speech → first bot audio, ms "
            f"(limit p50 {_fmt_ms(limit['p50'])}, p95 {_fmt_ms(limit['p95'])})"
        ),
        title_justify="left",
    )
    table.add_column("metric")
    for name in systems:
        table.add_column(name, justify="right")

    for field_name in LATENCY_FIELDS:
        if all(s[field_name]["p50"] is None for s in systems.values()):
            continue
        for q in ("p50", "p95"):
            row = [f"{_LATENCY_LABELS[field_name]} {q}"]
            for s in systems.values():
                value = s[field_name][q]
                base = stock[field_name][q] if stock else None
                cell = _fmt_ms(value)
                if value is not None and s is not stock:
                    cell += f" [dim]({_ratio(value, base) or 0:.2f}×)[/]" if base else ""
                row.append(cell)
            table.add_row(*row)
        if field_name == "latency_ms":
            for q in ("p50", "p95"):
                table.add_row(
                    f"  ÷ limit {q}",
                    *(
                        "n/a" if (r := _ratio(s[field_name][q], limit[q])) is None else f"{r:.2f}×"
                        for s in systems.values()
                    ),
                )
    table.add_section()
    table.add_row("cancel rate", *(_fmt_rate(s["cancel_rate"]) for s in systems.values()))
    table.add_row(
        "wasted tokens/turn",
        *(
            "n/a"
            if s["wasted_llm_tokens_per_turn"] is None
            else f"{s['wasted_llm_tokens_per_turn']:.1f}"
            for s in systems.values()
        ),
    )
    table.add_row(
        "wasted TTS chars/turn",
        *(
            "n/a"
            if s.get("wasted_tts_characters_per_turn") is None
            else f"{s['wasted_tts_characters_per_turn']:.1f}"
            for s in systems.values()
        ),
    )
    table.add_row(
        "false commit rate", *(_fmt_rate(s["false_commit_rate"]) for s in systems.values())
    )
    table.add_row(
        "answers/commit",
        *(
            "n/a"
            if s["answers_per_committed_turn"] is None
            else (
                f"{s['answers_per_committed_turn']:.2f}"
                if s["answers_per_committed_turn"] == 1.0
                else f"[bold red]{s['answers_per_committed_turn']:.2f}[/]"
            )
            for s in systems.values()
        ),
    )
    table.add_row(
        "commits/user turns",
        *(f"{s['committed_turns']}/{s['user_turns']}" for s in systems.values()),
    )
    table.add_row(
        "speculations a/w",
        *(
            f"{s['speculations']['adopted']}/{s['speculations']['withdrawn']}"
            for s in systems.values()
        ),
    )
    table.add_row("debounce changes", *(str(len(s["debounce_changes"])) for s in systems.values()))
    add_rag_rows(table, systems)
    console.print(table)
    console.print("[dim](×) = ratio to stock; latency in ms from the real end of speech[/]")

    targets = block["targets"]
    lines = []
    for name, t in targets.items():
        if name == "answers_per_committed_turn_is_1":
            verdict = all(t.values())
            lines.append(f"answers_per_committed_turn == 1.0 for every system: {_verdict(verdict)}")
        elif "value" in t:
            lines.append(f"{name} = {t['value']} (target {t['target']}): {_verdict(t['met'])}")
        else:
            ratios = ", ".join(
                f"{k.replace('_latency_ms', '')} {v}" for k, v in t["p50_ratios"].items()
            )
            lines.append(
                f"{name}: p50 ratios {ratios}; false commits {t['false_commit_rates'][0]} vs "
                f"{t['false_commit_rates'][1]} ({t['target']}): {_verdict(t['met'])}"
            )
    console.print("targets (reported, not asserted):\n  " + "\n  ".join(lines))


def _verdict(met: bool | None) -> str:
    return {True: "[green]met[/]", False: "[red]not met[/]", None: "n/a"}[met]

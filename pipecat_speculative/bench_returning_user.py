"""``pipecat-speculative bench --returning-user``: a returning hesitant user, cold and warm-started.

Per latency profile, one user and one store:

1. a **history** call (``hesitant_user_first_call``) with the speculative system, cold; at its
   end the strategy's profile is snapshotted and put into a real
   :class:`~pipecat_speculative.profiles.SQLiteProfileStore` (a temporary file);
2. the **next call** (``hesitant_user_return_call``, the same audio twice) played twice at once,
   each against its own stand-ins: ``cold`` (no profile, what every call did before profiles)
   and ``warm`` (the profile read back from the store and warm-started).

Scoring is the bench's (:func:`pipecat_speculative.bench.score_session`): each commit is placed
in the scenario and judged against its ground truth, so a **cut-in** is a false commit (the bot
took the turn while the user was mid-thought). Per turn of the next call: cut-ins, withdrawals
(speculations withdrawn because the user went on, tool calls excluded), latency (end of speech →
first bot audio of the answering commit) and cancel rate; then the first turns together, the
whole call, and the cold call's tenth turn, which is what one call learns by then: the target is
a warm first turn as good as that.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from rich.console import Console

from pipecat_speculative.bench import (
    ScoredTurn,
    score_session,
    score_sessions,
    write_bench_json,
)
from pipecat_speculative.offline_session import SessionResult, run_scenario_session
from pipecat_speculative.pipeline_builder import BotPipelineConfig, SystemKind
from pipecat_speculative.profiles import SQLiteProfileStore, TurnTakingProfile
from pipecat_speculative.scenarios.player import RenderedScenario, render_scenario
from pipecat_speculative.scenarios.scenario import Scenario, load_builtin_scenario
from pipecat_speculative.standins.profile import BENCH_PROFILE_NAMES, LatencyProfile
from pipecat_speculative.standins.standin_stack import StandinStack

__all__ = [
    "HISTORY_SCENARIO",
    "LATENCY_NOISE_MS",
    "RETURN_SCENARIO",
    "ReturningUserOptions",
    "markdown_table",
    "print_returning_user_document",
    "run_returning_user_bench",
    "turn_metrics",
]

HISTORY_SCENARIO = "hesitant_user_first_call"
"""The built-in call the profile is learned from."""

RETURN_SCENARIO = "hesitant_user_return_call"
"""The built-in call played cold and warm (twelve turns: the tenth is the comparison)."""

LATENCY_NOISE_MS = 50.0
"""Latency differences smaller than this are noise on a shared machine: a warm first turn within
it of the cold tenth turn counts as as good."""

SESSIONS = ("cold", "warm")


@dataclass
class ReturningUserOptions:
    """What to run.

    Parameters:
        profiles: Latency profiles (names or files), one after the other; None: reference,
            slow and fast.
        history: The call the profile is learned from; :data:`HISTORY_SCENARIO` when None.
        scenario: The call played cold and warm; :data:`RETURN_SCENARIO` when None.
        first_turns: How many opening turns are reported one by one.
        compare_turn: The cold call's turn (1-based) a warm first turn is held against.
        json_path: Where to write the JSON results.
        warm_connections: Warm connections before the first turn (both sessions alike).
        playback_speed: Speed of the bot's playback (first audio is timed exactly either way).
        system: The plugin system that runs (``speculative`` or ``speculative_tts``).
    """

    profiles: Sequence[Path | str] | None = None
    history: Scenario | None = None
    scenario: Scenario | None = None
    first_turns: int = 5
    compare_turn: int = 10
    json_path: Path | None = None
    warm_connections: bool = True
    playback_speed: float = 2.5
    system: SystemKind = SystemKind.SPECULATIVE


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def turn_metrics(scored: Sequence[ScoredTurn], indices: Sequence[int]) -> dict[str, Any]:
    """Cut-ins, withdrawals, latency and cancel rate over some turns of one scored session.

    Args:
        scored: The session's committed turns, placed in the scenario.
        indices: 0-based scenario turns to cover.

    Returns:
        ``turns`` covered, ``answered`` (turns with an answering commit), ``cut_ins`` (false
        commits), ``withdrawals`` and ``adopted`` speculations (tool-call withdrawals
        excluded), ``cancel_rate`` (withdrawals / both, None without any), ``latency_ms``
        (p50 over the answering commits; one turn: its latency) and ``delay_ms`` (the
        speculation delay in force at the first speculation of the first turn covered that
        had one).
    """
    wanted = set(indices)
    turns = [t for t in scored if t.scenario_turn in wanted]
    speculations = [e for t in turns for e in t.record.speculations]
    withdrawals = sum(1 for e in speculations if e.counts_toward_cancel_rate)
    adopted = sum(1 for e in speculations if e.outcome == "adopted")
    answering: dict[int, float] = {}
    for t in turns:
        total = t.record.stage("total")
        if not t.false_commit and total is not None and t.scenario_turn is not None:
            answering[t.scenario_turn] = total  # the last answering commit of the turn
    delays = [e.delay_secs for e in speculations if e.delay_secs is not None]
    return {
        "turns": len(wanted),
        "answered": len(answering),
        "cut_ins": sum(1 for t in turns if t.false_commit),
        "withdrawals": withdrawals,
        "adopted": adopted,
        "cancel_rate": (
            round(withdrawals / (withdrawals + adopted), 3) if withdrawals + adopted else None
        ),
        "latency_ms": (round(float(np.median(list(answering.values()))), 1) if answering else None),
        "delay_ms": round(delays[0] * 1000, 1) if delays else None,
    }


def _session_block(result: SessionResult, stacks: Sequence[StandinStack], first: int):
    scored = score_session(result)
    played = len(result.playbacks)
    return {
        "per_turn": [turn_metrics(scored, [i]) | {"turn": i + 1} for i in range(played)],
        "first_turns": turn_metrics(scored, range(min(first, played))),
        "call": turn_metrics(scored, range(played)),
        "bench": score_sessions([result], stacks),
        "profile_after": None if result.profile is None else _describe_profile(result.profile),
    }


def _target(cold: dict[str, Any], warm: dict[str, Any], compare_turn: int) -> dict[str, Any]:
    """Warm first turn vs cold ``compare_turn``: no worse, latency within the noise.

    No more cut-ins or withdrawals, latency within :data:`LATENCY_NOISE_MS`.
    """
    if len(cold["per_turn"]) < compare_turn or not warm["per_turn"]:
        return {"met": None, "why": f"the call has fewer than {compare_turn} turns"}
    first, tenth = warm["per_turn"][0], cold["per_turn"][compare_turn - 1]
    checks = {
        "cut_ins": first["cut_ins"] <= tenth["cut_ins"],
        "withdrawals": first["withdrawals"] <= tenth["withdrawals"],
        "latency": (
            None
            if first["latency_ms"] is None or tenth["latency_ms"] is None
            else first["latency_ms"] <= tenth["latency_ms"] + LATENCY_NOISE_MS
        ),
    }
    return {
        "warm_first_turn": first,
        "cold_compare_turn": tenth,
        "checks": checks,
        "target": (
            f"warm turn 1 vs cold turn {compare_turn}: no more cut-ins or withdrawals, "
            f"latency within {LATENCY_NOISE_MS:.0f} ms"
        ),
        "met": None if None in checks.values() else all(checks.values()),
    }


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


async def _play(
    rendered: RenderedScenario,
    profile: LatencyProfile,
    config: BotPipelineConfig,
    options: ReturningUserOptions,
) -> tuple[SessionResult, StandinStack]:
    """One call against its own stand-ins (connections and billing are the call's alone)."""
    stack = StandinStack(replace(profile))
    async with stack:
        result = await run_scenario_session(
            rendered, stack, config, playback_speed=options.playback_speed
        )
    return result, stack


async def _run_profile(
    name: str,
    profile: LatencyProfile,
    history: RenderedScenario,
    fresh: RenderedScenario,
    store: SQLiteProfileStore,
    options: ReturningUserOptions,
) -> dict[str, Any]:
    started = time.monotonic()
    user_id = f"returning-hesitant-user/{name}"
    config = BotPipelineConfig(
        system=options.system, warm=options.warm_connections, log_turns=False
    )
    past, past_stack = await _play(history, profile, config, options)
    if past.profile is None:
        raise RuntimeError(f"{options.system.value} left no profile: is it a plugin system?")
    await store.put(user_id, past.profile)
    stored = await store.get(user_id)
    if stored is None:
        raise RuntimeError("the profile just stored reads back as none")
    (cold, cold_stack), (warm, warm_stack) = await asyncio.gather(
        _play(fresh, profile, config, options),
        _play(fresh, profile, replace(config, profile=stored), options),
    )
    sessions = {
        "cold": _session_block(cold, [cold_stack], options.first_turns),
        "warm": _session_block(warm, [warm_stack], options.first_turns),
    }
    return {
        "profile": profile.to_dict(),
        "history": score_sessions([past], [past_stack]),
        "stored_profile": _describe_profile(stored),
        "sessions": sessions,
        "target": _target(sessions["cold"], sessions["warm"], options.compare_turn),
        "runtime_secs": round(time.monotonic() - started, 1),
    }


def _describe_profile(profile: TurnTakingProfile) -> dict[str, Any]:
    return {
        "speculation_delay_ms": round(profile.speculation_delay_secs * 1000, 1),
        "readiness_ms": (
            None if profile.readiness_secs is None else round(profile.readiness_secs * 1000, 1)
        ),
        "pauses": len(profile.pauses),
        "window_cancel_rate": profile.window_cancel_rate,
        "turns_seen": profile.turns_seen,
        "sessions_seen": profile.sessions_seen,
        "json_bytes": len(profile.to_json().encode()),
    }


async def run_returning_user_bench(
    options: ReturningUserOptions, console: Console | None = None
) -> dict[str, Any]:
    """Run the returning-user bench on every profile asked for; print, and write the JSON if asked.

    Args:
        options: What to run.
        console: Where to print.

    Returns:
        The JSON document.
    """
    console = console or Console()
    if options.first_turns < 1 or options.compare_turn < 1:
        raise ValueError("first_turns and compare_turn must be >= 1")
    started = time.monotonic()
    history = options.history or load_builtin_scenario(HISTORY_SCENARIO)
    scenario = options.scenario or load_builtin_scenario(RETURN_SCENARIO)
    names = options.profiles or list(BENCH_PROFILE_NAMES)
    profiles = [(str(n), LatencyProfile.load(n)) for n in names]
    with console.status("rendering user speech (Piper, cached)"):
        rendered_history = await render_scenario(history)
        rendered = await render_scenario(scenario)
    render_secs = time.monotonic() - started
    console.print(
        f"returning-user bench: history {history.name} ({len(history.turns)} turns), then "
        f"{scenario.name} ({len(scenario.turns)} turns) cold and warm at once; system "
        f"{options.system.value}; profiles {', '.join(n for n, _ in profiles)} one after the other"
    )
    blocks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="returning-user-") as tmp:
        store = SQLiteProfileStore(Path(tmp) / "profiles.db", salt=secrets.token_hex(16))
        try:
            for name, profile in profiles:
                with console.status(f"profile {name}: history call, then cold and warm calls"):
                    blocks[name] = await _run_profile(
                        name, profile, rendered_history, rendered, store, options
                    )
        finally:
            await store.close()
    document: dict[str, Any] = {
        "schema": "pipecat-speculative/bench-returning-user",
        "schema_version": 1,
        "system": options.system.value,
        "history_scenario": history.name,
        "scenario": scenario.name,
        "first_turns": options.first_turns,
        "compare_turn": options.compare_turn,
        "warm_connections": options.warm_connections,
        "playback_speed": options.playback_speed,
        "store": "SQLiteProfileStore (temporary file)",
        "profiles": blocks,
        "runtime_secs": {
            "render": round(render_secs, 1),
            "total": round(time.monotonic() - started, 1),
        },
    }
    print_returning_user_document(document, console)
    write_bench_json(document, options.json_path, console)
    logger.debug(f"returning-user bench finished in {document['runtime_secs']['total']} s")
    return document


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


_COLUMNS = ("cut-ins", "withdrawals", "latency ms", "cancel rate", "delay ms")


def _values(m: dict[str, Any]) -> list[str]:
    latency = "n/a" if m["latency_ms"] is None else f"{m['latency_ms']:,.0f}"
    rate = "n/a" if m["cancel_rate"] is None else f"{m['cancel_rate']:.0%}"
    delay = "n/a" if m["delay_ms"] is None else f"{m['delay_ms']:.0f}"
    return [str(m["cut_ins"]), str(m["withdrawals"]), latency, rate, delay]


def markdown_table(block: dict[str, Any], first_turns: int, compare_turn: int) -> str:
    """One profile's results as a markdown table, each cell ``cold / warm``.

    Rows: each of the first turns, the first turns together, ``compare_turn`` (when the call has
    it) and the whole call.
    """
    cold, warm = block["sessions"]["cold"], block["sessions"]["warm"]
    rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        (str(i + 1), cold["per_turn"][i], warm["per_turn"][i])
        for i in range(min(first_turns, len(cold["per_turn"])))
    ]
    rows.append((f"turns 1-{first_turns}", cold["first_turns"], warm["first_turns"]))
    if len(cold["per_turn"]) >= compare_turn:
        rows.append(
            (
                str(compare_turn),
                cold["per_turn"][compare_turn - 1],
                warm["per_turn"][compare_turn - 1],
            )
        )
    rows.append(("whole call", cold["call"], warm["call"]))
    lines = [
        "| turn | " + " | ".join(f"{c} (cold / warm)" for c in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for label, c, w in rows:
        cells = [f"{a} / {b}" for a, b in zip(_values(c), _values(w), strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_returning_user_document(document: dict[str, Any], console: Console):
    """Print one markdown table per latency profile, the stored profile, target and run time."""
    first, compare = document["first_turns"], document["compare_turn"]
    for name, block in document["profiles"].items():
        console.print(
            f"\n[bold]profile {name}[/]: returning hesitant user, without (cold) and with (warm) "
            "the stored profile"
        )
        console.print(
            markdown_table(block, first, compare), markup=False, highlight=False, soft_wrap=True
        )
        stored = block["stored_profile"]
        console.print(
            f"stored profile after the history call: delay {stored['speculation_delay_ms']:.0f} "
            f"ms, readiness {stored['readiness_ms']} ms, {stored['pauses']} pauses, "
            f"{stored['turns_seen']} turns, {stored['json_bytes']} bytes of JSON. Latency: end "
            "of speech → first bot audio of the answering commit (p50 over several turns); "
            "delay: the speculation delay at the first speculation.",
            highlight=False,
        )
        target = block["target"]
        verdict = {True: "[green]met[/]", False: "[red]not met[/]", None: "n/a"}[target["met"]]
        detail = target.get("target") or target.get("why")
        checks = ", ".join(f"{k} {'ok' if v else v}" for k, v in target.get("checks", {}).items())
        console.print(
            f"target ({detail}): {verdict} ({checks}); {block['runtime_secs']} s", highlight=False
        )
    runtime = document["runtime_secs"]
    console.print(f"runtime {runtime['total']} s (render {runtime['render']} s)")

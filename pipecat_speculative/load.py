"""``pipecat-speculative load``: what N concurrent sessions cost the plugin, and what they add.

The bench's ``--sessions`` runs every copy in one process with the stand-ins, which synthesize the
bot's speech (Piper) on demand: on a small machine the harness, not the plugin, then sets the
latency. This command measures the bots alone:

- **The harness stays out of the bots' process.** This process renders the user's speech, runs
  the stand-ins and scores; each (system, session count) runs in a fresh bot process
  (``multiprocessing`` spawn) holding only the sessions: the real Pipecat services, Silero VAD,
  the scenario microphone and the paced speaker. Its CPU and memory are the bots'.
- **One bot process per step.** All of a step's sessions share it, as they would share a
  worker process in a fleet: one event loop, so past about one core of work the process is
  saturated (``bot_process_cores`` near 1) and latency and unanswered turns climb whatever
  the machine's other cores do.
- **Nothing is synthesized while timed.** The TTS stand-in's speech is rendered before the first
  run (:class:`~pipecat_speculative.standins.prerendered_speech.PrerenderedSpeechEngine`): every
  sentence the deterministic stand-in LLM gives for the scenarios' texts, and every word as a
  clip for the answers it cannot predict (they quote the user's words). The user's speech is
  rendered (and cached on disk) before any run too.

Per system and session count it reports latency p50/p95 and the p95 added against one session,
the false commit rate and answers per committed turn (the scoring of :mod:`.bench`), CPU per
session (bot process CPU seconds / session / wall second, with Silero's share measured around
every ``voice_confidence`` call, and the harness's separately), and RSS per session (the bot
process's peak above its RSS before the sessions started, / sessions). Every session plays
the same conversation (:func:`load_scenario`), so N is the number of concurrent sessions.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.table import Table

from pipecat_speculative.bench import quick_scenarios, score_sessions
from pipecat_speculative.pipeline_builder import BotPipelineConfig, ServiceEndpoints, SystemKind
from pipecat_speculative.process_measures import cpu_secs, rss_bytes, write_json_document
from pipecat_speculative.scenarios.player import SAMPLE_RATE, RenderedScenario, render_scenario
from pipecat_speculative.scenarios.scenario import Scenario, load_builtin_scenario
from pipecat_speculative.standins.deterministic_llm import reply_to
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.standin_stack import StandinStack

__all__ = [
    "DEFAULT_SESSION_COUNTS",
    "LoadOptions",
    "load_scenario",
    "print_load_table",
    "run_load",
    "standin_sentences",
]

DEFAULT_SESSION_COUNTS: tuple[int, ...] = (1, 10, 25, 50)
"""Concurrent sessions per step of the sweep."""

_SENTENCE = re.compile(r"[^.!?]+[.!?]+|[^.!?]+$")


@dataclass
class LoadOptions:
    """What a load sweep runs.

    Parameters:
        session_counts: Concurrent sessions per step, run one after the other.
        systems: Systems swept, each at every count (``stock`` is the baseline).
        profile: Latency profile (a name or a file).
        scenarios: Built-in scenario names, played one after the other by every session
            (:func:`load_scenario`); None: the bench's ``--quick`` pair.
        json_path: Where to write the JSON.
        playback_speed: The bot's playback speed (first audio is timed exactly either way).
        warm: Warm connections (the plugin's systems).
        prerender: Render the TTS stand-in's speech before timing (off: Piper on demand, the
            bench's behaviour, to see what the harness costs).
    """

    session_counts: Sequence[int] = DEFAULT_SESSION_COUNTS
    systems: Sequence[SystemKind] = (SystemKind.SPECULATIVE, SystemKind.STOCK)
    profile: str | Path = "reference"
    scenarios: Sequence[str | Scenario] | None = None
    json_path: Path | None = None
    playback_speed: float = 2.5
    warm: bool = True
    prerender: bool = True


def standin_sentences(scenarios: Sequence[Scenario]) -> list[str]:
    """Every sentence the stand-in LLM answers to the scenarios' turns and their segment prefixes."""
    sentences: set[str] = set()
    for scenario in scenarios:
        for turn in scenario.turns:
            said: list[str] = []
            for segment in turn.segments:
                said.append(segment.text)
                for text in (" ".join(said), segment.text):
                    answer = reply_to([{"role": "user", "content": text}]).text or ""
                    sentences.update(s.strip() for s in _SENTENCE.findall(answer) if s.strip())
    return sorted(sentences)


# ---------------------------------------------------------------------------------------------
# Bot process
# ---------------------------------------------------------------------------------------------


class _SileroMeter:
    """CPU seconds spent in Silero's model, summed over every analyzer of the process.

    Wraps ``SileroVADAnalyzer.voice_confidence`` (public) for the life of a bot process: each
    call is timed with ``time.thread_time()`` on the VAD executor thread that runs it.
    """

    def __init__(self) -> None:
        self.cpu_secs = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from pipecat.audio.vad.silero import SileroVADAnalyzer

        original = SileroVADAnalyzer.voice_confidence
        meter = self

        def voice_confidence(analyzer: Any, buffer: Any) -> float:
            start = time.thread_time()
            try:
                return original(analyzer, buffer)
            finally:
                spent = time.thread_time() - start
                with meter._lock:
                    meter.cpu_secs += spent
                    meter.calls += 1

        SileroVADAnalyzer.voice_confidence = voice_confidence  # type: ignore[method-assign]


class _RssSampler:
    """Peak RSS over a stretch of time, sampled every ``period_secs`` in a thread."""

    def __init__(self, period_secs: float = 0.2) -> None:
        self.peak = rss_bytes()
        self._period = period_secs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class _PreparedDeepgram:
    def __init__(self, tags: Sequence[str]) -> None:
        self._tags = set(tags)

    def set_script(self, script: Any, *, tag: str | None = None) -> None:
        if tag not in self._tags:
            raise RuntimeError(f"Deepgram tag {tag!r} was not registered by the harness")


class _RemoteStack:
    """The stand-ins of the harness process, seen from a bot process: endpoints and tags."""

    def __init__(self, endpoints: ServiceEndpoints, tags: Sequence[str]) -> None:
        self.endpoints = endpoints
        self.deepgram = _PreparedDeepgram(tags)


@dataclass
class _Job:
    system: SystemKind
    rendered: list[RenderedScenario]
    tags: list[str]
    endpoints: ServiceEndpoints
    playback_speed: float
    warm: bool


def _bot_process_main(conn: Any, job: _Job) -> None:
    """Entry point of a bot process: run the sessions, send back scores and measurements."""
    logger.remove()
    logger.add(lambda m: os.write(2, str(m).encode()), level="WARNING")
    try:
        conn.send(("done", asyncio.run(_bot_process(conn, job))))
    except BaseException as e:  # the harness must hear of any failure, then the process ends
        conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


async def _bot_process(conn: Any, job: _Job) -> dict[str, Any]:
    from pipecat_speculative.offline_session import run_scenario_session

    meter = _SileroMeter()
    meter.install()
    stack = _RemoteStack(job.endpoints, job.tags)
    n = len(job.tags)
    conn.send(("started", None))
    rss_before = rss_bytes()
    cpu_before = cpu_secs()
    started = time.monotonic()
    with _RssSampler() as sampler:
        results = await asyncio.gather(
            *(
                run_scenario_session(
                    job.rendered[i % len(job.rendered)],
                    stack,  # type: ignore[arg-type]
                    BotPipelineConfig(
                        system=job.system, warm=job.warm, log_turns=False, deepgram_tag=tag
                    ),
                    playback_speed=job.playback_speed,
                )
                for i, tag in enumerate(job.tags)
            )
        )
    wall = time.monotonic() - started
    cpu = cpu_secs() - cpu_before
    scores = score_sessions(results)
    return {
        "scores": scores,
        "wall_secs": wall,
        "cpu_secs": cpu,
        "silero_cpu_secs": meter.cpu_secs,
        "silero_calls": meter.calls,
        "rss_before_bytes": rss_before,
        "rss_peak_bytes": sampler.peak,
        "sessions": n,
    }


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------


async def _run_step(
    system: SystemKind,
    n: int,
    rendered: Sequence[RenderedScenario],
    stack: StandinStack,
    options: LoadOptions,
) -> dict[str, Any]:
    tags = [uuid.uuid4().hex[:10] for _ in range(n)]
    for i, tag in enumerate(tags):
        stack.deepgram.set_script(rendered[i % len(rendered)].script, tag=tag)
    job = _Job(system, list(rendered), tags, stack.endpoints, options.playback_speed, options.warm)
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=_bot_process_main, args=(there, job), name=f"load-{system}-{n}")
    process.start()
    there.close()
    spawned = time.monotonic()
    try:
        kind, _ = await asyncio.to_thread(here.recv)
        if kind != "started":
            raise RuntimeError(f"bot process failed before its sessions: {_}")
        harness_before = cpu_secs()
        kind, payload = await asyncio.to_thread(here.recv)
        harness_cpu = cpu_secs() - harness_before
    except EOFError as e:
        raise RuntimeError(f"bot process for {system} × {n} died (exit {process.exitcode})") from e
    finally:
        await asyncio.to_thread(process.join, 30)
        here.close()
    if kind != "done":
        raise RuntimeError(f"bot process for {system} × {n} failed: {payload}")
    scores = payload["scores"]
    wall = payload["wall_secs"]
    per_session = 1.0 / (n * wall) if wall > 0 else 0.0
    return {
        "system": str(system),
        "sessions": n,
        "latency_ms": scores["latency_ms"],
        "false_commit_rate": scores["false_commit_rate"],
        "answers_per_committed_turn": scores["answers_per_committed_turn"],
        "committed_turns": scores["committed_turns"],
        "user_turns": scores["user_turns"],
        "unanswered_user_turns": scores["unanswered_user_turns"],
        "cpu_per_session": {
            "bot": round(payload["cpu_secs"] * per_session, 4),
            "silero": round(payload["silero_cpu_secs"] * per_session, 4),
            "bot_without_silero": round(
                (payload["cpu_secs"] - payload["silero_cpu_secs"]) * per_session, 4
            ),
            "harness": round(harness_cpu * per_session, 4),
        },
        "cpu_secs": {
            "bot": round(payload["cpu_secs"], 2),
            "silero": round(payload["silero_cpu_secs"], 2),
            "harness": round(harness_cpu, 2),
        },
        # The work, whatever the wall: on a starved machine the wall stretches and the per-wall-
        # second figures fall while the latency rises; these do not.
        "cpu_secs_per_user_turn": {
            "bot": _per(payload["cpu_secs"], scores["user_turns"]),
            "silero": _per(payload["silero_cpu_secs"], scores["user_turns"]),
        },
        "bot_process_cores": round(payload["cpu_secs"] / wall, 2) if wall > 0 else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "silero_calls": payload["silero_calls"],
        "rss_mb": {
            "before": round(payload["rss_before_bytes"] / 2**20, 1),
            "peak": round(payload["rss_peak_bytes"] / 2**20, 1),
            "per_session": round(
                (payload["rss_peak_bytes"] - payload["rss_before_bytes"]) / n / 2**20, 2
            ),
        },
        "wall_secs": round(wall, 1),
        "process_secs": round(time.monotonic() - spawned, 1),
    }


def _per(value: float, count: int) -> float | None:
    return round(value / count, 3) if count else None


def load_scenario(names: Sequence[str | Scenario] | None = None) -> Scenario:
    """What every session plays: the scenarios' turns one after the other, as one conversation.

    One conversation for every session, so one session and fifty play the same turns and their
    latencies compare. The first scenario's pacing (gap after the bot, speaking rate) applies.

    Args:
        names: Built-in scenario names (or scenarios); None: the bench's ``--quick`` pair.
    """
    parts = (
        [n if isinstance(n, Scenario) else load_builtin_scenario(n) for n in names]
        if names
        else quick_scenarios()
    )
    turns = tuple(t for part in parts for t in part.turns)
    return replace(parts[0], name="+".join(p.name for p in parts), turns=turns)


async def run_load(options: LoadOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the sweep, print its table, write the JSON if asked, and return the document."""
    console = console or Console()
    counts = list(options.session_counts)
    if not counts or min(counts) < 1:
        raise ValueError("session counts must be >= 1")
    started = time.monotonic()
    scenarios = [load_scenario(options.scenarios)]
    profile = LatencyProfile.load(options.profile)
    with console.status("rendering user speech (Piper, cached)"):
        rendered = [await render_scenario(s) for s in scenarios]
    speech: Any = "auto"
    prerender: dict[str, Any] = {"enabled": options.prerender}
    if options.prerender:
        from pipecat_speculative.standins.prerendered_speech import PrerenderedSpeechEngine
        from pipecat_speculative.standins.speech_engine import get_speech_engine

        source = await asyncio.to_thread(get_speech_engine, "auto")
        speech = PrerenderedSpeechEngine(source, sample_rate=SAMPLE_RATE)
        sentences = standin_sentences(scenarios)
        words = [seg.text for s in scenarios for t in s.turns for seg in t.segments]
        with console.status("rendering the TTS stand-in's speech"):
            began = time.monotonic()
            await asyncio.to_thread(speech.prerender, sentences, words)
        prerender.update(
            engine=speech.name,
            sentences=speech.prerendered[0],
            words=speech.prerendered[1],
            secs=round(time.monotonic() - began, 1),
        )
    console.print(
        f"load: {len(scenarios)} scenarios ({', '.join(s.name for s in scenarios)}), sessions "
        f"{', '.join(map(str, counts))}, systems {', '.join(map(str, options.systems))}; "
        f"profile {options.profile}; {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    steps: list[dict[str, Any]] = []
    async with StandinStack(replace(profile), speech=speech) as stack:
        for system in options.systems:
            for n in counts:
                with console.status(f"{system} × {n} session(s): running in real time"):
                    before = speech.stats() if options.prerender else {}
                    step = await _run_step(SystemKind(system), n, rendered, stack, options)
                if options.prerender:
                    after = speech.stats()
                    step["tts_audio"] = {k: after[k] - before.get(k, 0) for k in after}
                steps.append(step)
                console.print(
                    f"  {system} × {n}: p95 {step['latency_ms']['p95']} ms, {step['wall_secs']} s"
                )
    _add_p95_deltas(steps)
    document = {
        "schema": "pipecat-speculative/load",
        "schema_version": 1,
        "profile": str(options.profile),
        "scenarios": [s.name for s in scenarios],
        "session_counts": counts,
        "systems": [str(s) for s in options.systems],
        "cpu_count": os.cpu_count(),
        "prerender": prerender,
        "steps": steps,
        "runtime_secs": round(time.monotonic() - started, 1),
    }
    print_load_table(document, console)
    if options.json_path is not None:
        write_json_document(options.json_path, document, console)
    return document


def _add_p95_deltas(steps: list[dict[str, Any]]) -> None:
    """``p95_added_ms``: each step's p95 minus the same system's p95 at its smallest count."""
    base: dict[str, float | None] = {}
    for step in sorted(steps, key=lambda s: s["sessions"]):
        base.setdefault(step["system"], step["latency_ms"]["p95"])
    for step in steps:
        b, p95 = base[step["system"]], step["latency_ms"]["p95"]
        step["p95_added_ms"] = None if b is None or p95 is None else round(p95 - b, 1)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_load_table(document: dict[str, Any], console: Console) -> None:
    """One row per (system, session count)."""
    table = Table(
        title=(
            f"load, profile {document['profile']}: latency ms from the real end of speech; CPU "
            "in % of one core per session; RSS MB per session"
        ),
        title_justify="left",
    )
    for name in (
        "system",
        "sessions",
        "p50",
        "p95",
        "p95 added",
        "false commits",
        "answers/commit",
        "commits/turns",
        "unanswered",
        "bot CPU",
        "  Silero",
        "  rest",
        "harness CPU",
        "bot CPU s/turn",
        "bot cores",
        "load avg",
        "RSS/session",
        "wall s",
    ):
        table.add_column(name, justify="left" if name == "system" else "right")
    for s in document["steps"]:
        cpu = s["cpu_per_session"]
        lat = s["latency_ms"]
        table.add_row(
            s["system"],
            str(s["sessions"]),
            "n/a" if lat["p50"] is None else f"{lat['p50']:,.0f}",
            "n/a" if lat["p95"] is None else f"{lat['p95']:,.0f}",
            "n/a" if s["p95_added_ms"] is None else f"{s['p95_added_ms']:+,.0f}",
            _pct(s["false_commit_rate"]),
            "n/a"
            if s["answers_per_committed_turn"] is None
            else f"{s['answers_per_committed_turn']:.2f}",
            f"{s['committed_turns']}/{s['user_turns']}",
            str(s["unanswered_user_turns"]),
            f"{cpu['bot']:.1%}",
            f"{cpu['silero']:.1%}",
            f"{cpu['bot_without_silero']:.1%}",
            f"{cpu['harness']:.1%}",
            "n/a"
            if s["cpu_secs_per_user_turn"]["bot"] is None
            else f"{s['cpu_secs_per_user_turn']['bot']:.2f}",
            f"{s['bot_process_cores']}",
            f"{s['load_average_1m']}",
            f"{s['rss_mb']['per_session']:.1f}",
            f"{s['wall_secs']:.0f}",
        )
    console.print(table, width=max(console.width, 160))
    console.print(
        f"[dim]{document['cpu_count']} cores; bot CPU = bot process CPU s / session / wall s "
        "(Silero timed around each voice_confidence call); harness = stand-ins and scoring; "
        "bot CPU s/turn = the work whatever the wall; bot cores = bot process CPU s / wall s "
        "(one process, one event loop: near 1 it is saturated; well under 1 with latency "
        "rising, other processes hold the CPU); unanswered = user turns the bot never answered "
        "before the user went on (20 s); "
        f"TTS speech prerendered: {document['prerender'].get('enabled')}; runtime "
        f"{document['runtime_secs']} s[/]"
    )

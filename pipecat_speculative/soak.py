"""``pipecat-speculative soak``: one long session through the plugin's real pieces; does it stay flat?

One bot (:func:`~pipecat_speculative.pipeline_builder.build_bot_pipeline`, the ``speculative``
system) hears ``turns`` scripted user turns: the speculative turn strategy and its planner,
debounce and patience, :class:`~pipecat_speculative.turns.TranscriptionGuard`, parallel RAG with
its transcript tap on the embedded local store (real MiniLM embeddings), the
speculation-aware OpenAI service (``SpeculationAwareLLMMixin``, warm connections) and the warm
ElevenLabs service against the stand-ins on the ``instant`` profile, a paced output transport
(bot speaking frames, interruptions), and the turn timing observer with a JSONL sink.

The user is frames, not audio (a VAD and an STT would only turn audio back into these frames, and
1,000 turns of real-time speech would take an hour): VAD start/stop, interim and final transcripts
on a scripted timeline, with real but small delays (a 0.1 s commit floor, debounce and patience
scaled the same way). Each turn is one of: fluent, hesitant (a pause then more words: a
withdrawal), a late final (re-speculation), a cough in the pause, a barge-in while the bot speaks;
now and then the app asks for a bot-initiated reply. The app keeps the LLM context to its last
messages (the conversation is the app's to trim; the plugin's structures are what is measured).

At checkpoints it records RSS, tracemalloc, the asyncio task count and the size of every list,
dict, set and deque reachable from the bot's processors, strategy and observer (a generic walk,
so a structure nobody thought of is seen too). The verdict compares the end with the state after
warm-up: growth per 1,000 turns of traced memory (the soak's own bookkeeping left out) and RSS,
and any container still growing over the second half that has no bound (a deque's ``maxlen``,
:data:`KNOWN_CAPS`); a bounded one still filling up is listed apart.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import random
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    LLMRunFrame,
    StartFrame,
)
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner
from rich.console import Console
from rich.table import Table

from pipecat_speculative.metrics.sinks.jsonl_sink import JSONLSink
from pipecat_speculative.metrics.turn_record import HISTORY_LIMIT, TurnRecord
from pipecat_speculative.metrics.turn_timeline import _MAX_TRACKED as MAX_TRACKED
from pipecat_speculative.pipeline_builder import (
    BotPipelineConfig,
    ServiceEndpoints,
    SystemKind,
    build_bot_pipeline,
)
from pipecat_speculative.process_measures import rss_bytes, write_json_document
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.standin_stack import StandinStack
from pipecat_speculative.testing.timeline import Timeline
from pipecat_speculative.transports.paced_output_transport import PacedOutputTransport
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.commit_patience import PatienceParams
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams

__all__ = [
    "FLAT_TRACED_MB_PER_1000",
    "KNOWN_CAPS",
    "SOAK_TURN_KINDS",
    "SoakOptions",
    "container_sizes",
    "print_soak_report",
    "run_soak",
    "soak_turn_params",
]

SOAK_TURN_KINDS: tuple[str, ...] = ("fluent", "hesitant", "late_final", "cough", "barge_in")
"""How a scripted turn goes (see the module doc)."""

_WEIGHTS = (0.45, 0.2, 0.1, 0.1, 0.15)
_TOPICS = (
    "refunds",
    "shipping",
    "the warranty",
    "invoices",
    "opening hours",
    "returns",
    "the loyalty program",
    "gift cards",
    "delivery times",
    "account security",
)
FLAT_TRACED_MB_PER_1000 = 1.0
"""Traced memory growing slower than this over the second half of the run (MB per 1,000 turns),
with no container still growing, is flat: 1 KB kept per turn would be exactly this."""

_SCALE = 1 / 6
"""Soak timings are the defaults scaled by this (a 0.6 s floor becomes 0.1 s)."""


def soak_turn_params() -> SpeculativeTurnParams:
    """The speculative strategy's defaults, every duration scaled by ``1/6``."""
    d, p, t = DebounceParams(), PatienceParams(), SpeculativeTurnParams()
    return replace(
        t,
        debounce=replace(
            d,
            max_secs=d.max_secs * _SCALE,
            step_secs=d.step_secs * _SCALE,
            margin_secs=d.margin_secs * _SCALE,
            max_jump_secs=d.max_jump_secs * _SCALE,
        ),
        patience=replace(
            p,
            max_secs=p.max_secs * _SCALE,
            margin_secs=p.margin_secs * _SCALE,
            cut_in_secs=p.cut_in_secs * _SCALE,
        ),
        resume_withdraw_secs=t.resume_withdraw_secs * _SCALE,
        speculation_timeout_secs=t.speculation_timeout_secs * _SCALE,
        commit_ceiling_secs=t.commit_ceiling_secs * _SCALE,
        initial_readiness_secs=t.initial_readiness_secs * _SCALE,
    )


@dataclass
class SoakOptions:
    """What a soak runs.

    Parameters:
        turns: User turns in the session.
        checkpoint_every: Turns between checkpoints.
        warmup_turns: Turns before the baseline the verdict compares with.
        seed: The script's random seed (the same seed plays the same session).
        out_dir: Where the JSONL sink writes (and the local store lives).
        json_path: Where to write the JSON report.
        rag: Parallel RAG on the embedded local store (needs the ``rag`` extra).
        keep_context_messages: The app trims the LLM context to this many messages at each
            checkpoint; None never trims.
        trace_frames: tracemalloc frames per allocation (1 is cheapest; growth sites by line).
    """

    turns: int = 1000
    checkpoint_every: int = 100
    warmup_turns: int = 100
    seed: int = 12
    out_dir: Path = Path("out/soak")
    json_path: Path | None = None
    rag: bool = True
    keep_context_messages: int | None = 40
    trace_frames: int = 1


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


_CONTAINERS = (list, dict, set, deque)


KNOWN_CAPS: dict[str, int] = {
    "debounce_history": HISTORY_LIMIT,
    "warmups": HISTORY_LIMIT,
    "_inferences": MAX_TRACKED,
    "_awaiting_llm": MAX_TRACKED,
    "_tts_contexts": MAX_TRACKED,
    "_by_strategy_id": MAX_TRACKED,
}
"""Lists and dicts the plugin trims itself, by attribute name, with their bound (a deque's
``maxlen`` is read from the deque)."""


def container_sizes(
    roots: dict[str, Any], *, depth: int = 4, caps: dict[str, int] | None = None
) -> dict[str, int]:
    """``path → len`` of every list, dict, set and deque reachable from ``roots``.

    Walks instance attributes of Pipecat and plugin objects (``vars()``), at most ``depth``
    objects deep, each object once (by the first path that reaches it). Objects inside
    containers are not entered: a container's length is what grows.

    Args:
        roots: Name → object to start from.
        depth: How many objects deep to go.
        caps: Filled with ``path → bound`` for the containers with a known one (a deque's
            ``maxlen``, :data:`KNOWN_CAPS`).
    """
    sizes: dict[str, int] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, level: int) -> None:
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        try:
            attrs = vars(obj)
        except TypeError:
            return
        for name, value in list(attrs.items()):
            where = f"{path}.{name}"
            if isinstance(value, _CONTAINERS):
                sizes[where] = len(value)
                cap = value.maxlen if isinstance(value, deque) else KNOWN_CAPS.get(name)
                if caps is not None and cap is not None:
                    caps[where] = cap
            elif type(value).__module__.startswith("pipecat"):
                walk(value, where, level + 1)

    for name, root in roots.items():
        walk(root, name, 0)
    return sizes


@dataclass
class _Checkpoint:
    turn: int
    label: str
    wall_secs: float
    rss_mb: float
    traced_mb: float
    tasks: int
    context_messages: int
    records: int
    sizes: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "label": self.label,
            "wall_secs": round(self.wall_secs, 1),
            "rss_mb": round(self.rss_mb, 2),
            "traced_mb": round(self.traced_mb, 3),
            "asyncio_tasks": self.tasks,
            "context_messages": self.context_messages,
            "turn_records": self.records,
        }


class _BotSpeech(FrameProcessor):
    """After the output: sees the pipeline start and the bot start and stop speaking."""

    def __init__(self) -> None:
        super().__init__(name="soak-bot-speech")
        self.started = asyncio.Event()
        self.speaking = asyncio.Event()
        self.quiet = asyncio.Event()
        self.quiet.set()
        self.replies = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.started.set()
        elif isinstance(frame, BotStartedSpeakingFrame):
            self.replies += 1
            self.quiet.clear()
            self.speaking.set()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.speaking.clear()
            self.quiet.set()
        await self.push_frame(frame, direction)


def _turn(rng: random.Random, index: int, kind: str) -> Timeline:
    topic = rng.choice(_TOPICS)
    first = f"so about {topic}"
    rest = f"what does the document say about {topic} for order {index}"
    fluent = {"speech_secs": 0.05, "pause_after_secs": 0.0, "final_after_stop_secs": 0.005}
    t = Timeline()
    if kind == "hesitant":
        t.say(first, speech_secs=0.05, pause_after_secs=0.05, final_after_stop_secs=0.005)
        t.say(rest, **fluent)
    elif kind == "late_final":
        t.say(rest, speech_secs=0.05, pause_after_secs=0.0, final_after_stop_secs=0.06)
    elif kind == "cough":
        t.say(rest, speech_secs=0.05, pause_after_secs=0.0, blip_at_secs=0.03)
    else:
        t.say(rest, **fluent)
    return t


async def _play(t: Timeline, queue: Callable[[Frame], Any]) -> None:
    began = time.monotonic()
    for at, _, frame in t.events():
        delay = began + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await queue(frame)


def _slope_per_1000(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of ``value`` over ``turn``, per 1,000 turns."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return 1000 * sum((p[0] - mx) * (p[1] - my) for p in points) / var


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


async def run_soak(options: SoakOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the soak, print its report, write the JSON if asked, and return the document."""
    console = console or Console()
    if options.turns < 1 or options.checkpoint_every < 1:
        raise ValueError("turns and checkpoint_every must be >= 1")
    started = time.monotonic()
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the session
    tracemalloc.start(options.trace_frames)
    rag_config, rag_note = await _rag(options, out_dir, console)
    jsonl = out_dir / "soak_turns.jsonl"
    jsonl.unlink(missing_ok=True)  # noqa: ASYNC240 - once, before the session
    rng = random.Random(options.seed)
    kinds: dict[str, int] = dict.fromkeys(SOAK_TURN_KINDS, 0)
    turn_secs: dict[str, float] = dict.fromkeys(SOAK_TURN_KINDS, 0.0)
    checkpoints: list[_Checkpoint] = []
    records = 0
    snapshots: dict[str, tracemalloc.Snapshot] = {}
    caps: dict[str, int] = {}

    async with _StandinProcess() as endpoints:
        config = BotPipelineConfig(
            system=SystemKind.SPECULATIVE,
            endpoints=endpoints,
            speculative_params=soak_turn_params(),
            commit_floor_secs=0.6 * _SCALE,
            sinks=[JSONLSink(jsonl)],
            log_turns=False,
            session_id="soak",
            rag=rag_config,
        )
        speech = _BotSpeech()
        bot = build_bot_pipeline(
            config,
            transport_input=IdentityFilter(),
            stt=IdentityFilter(),  # type: ignore[arg-type] - the user is transcripts already
            transport_output=PacedOutputTransport(
                # One-second chunks: the answers play at 1000x without a sleep per 40 ms.
                TransportParams(
                    audio_out_sample_rate=config.sample_rate, audio_out_10ms_chunks=100
                ),
                speed=1000.0,
            ),
            after_output=[speech],
        )

        @bot.observer.event_handler("on_turn_completed")
        async def _count(_observer, _record: TurnRecord):
            nonlocal records
            records += 1

        roots = {
            "strategy": bot.strategy,
            "observer": bot.observer,
            "llm": bot.llm,
            "tts": bot.tts,
            "rag": bot.rag,
            "user_aggregator": bot.user_aggregator,
            "assistant_aggregator": bot.assistant_aggregator,
            **{f"p{i}_{p.name}": p for i, p in enumerate(bot.pipeline.processors)},
        }

        def checkpoint(turn: int, label: str) -> None:
            gc.collect()
            if options.keep_context_messages is not None:
                messages = bot.context.messages
                if len(messages) > options.keep_context_messages:
                    bot.context.set_messages(messages[-options.keep_context_messages :])
            snapshot = _own_snapshot()
            cp = _Checkpoint(
                turn=turn,
                label=label,
                wall_secs=time.monotonic() - started,
                rss_mb=rss_bytes() / 2**20,
                traced_mb=sum(t.size for t in snapshot.traces) / 2**20,
                tasks=len(asyncio.all_tasks()),
                context_messages=len(bot.context.messages),
                records=records,
                sizes=container_sizes(roots, caps=caps),
            )
            checkpoints.append(cp)
            if label in ("warm-up", "end"):
                snapshots[label] = snapshot
            row = cp.row()
            console.print(
                f"  turn {turn} ({label}): RSS {row['rss_mb']} MB, traced {row['traced_mb']} MB, "
                f"{cp.tasks} tasks, {row['wall_secs']} s"
            )

        worker = bot.create_worker()
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run(), name="soak-session")
        try:
            await asyncio.wait_for(speech.started.wait(), 30)
            await asyncio.sleep(0.3)  # warm connections open
            checkpoint(0, "start")
            with console.status(f"soak: {options.turns} turns") as status:
                for i in range(options.turns):
                    kind = rng.choices(SOAK_TURN_KINDS, _WEIGHTS)[0]
                    kinds[kind] += 1
                    turn_began = time.monotonic()
                    await _play(_turn(rng, i, kind), worker.queue_frame)
                    await _wait_for_bot(speech, barge_in=kind == "barge_in")
                    turn_secs[kind] += time.monotonic() - turn_began
                    if i % 97 == 96:
                        # A bot-initiated reply (a reminder, a greeting): no user turn owns it.
                        await worker.queue_frame(LLMRunFrame())
                        await _wait_for_bot(speech, barge_in=False)
                    done = i + 1
                    if done == options.turns:
                        checkpoint(done, "end")
                    elif done == options.warmup_turns:
                        checkpoint(done, "warm-up")
                    elif done % options.checkpoint_every == 0:
                        checkpoint(done, "checkpoint")
                    status.update(f"soak: {done}/{options.turns} turns")
        finally:
            await worker.queue_frame(EndFrame())
            try:
                await asyncio.wait_for(asyncio.shield(run), timeout=15.0)
            except TimeoutError:
                logger.warning("soak: pipeline did not end in 15 s; cancelling")
                await worker.cancel()
                await run
            await bot.close()
        summary = bot.observer.summary()
    tracemalloc.stop()

    document = _document(options, checkpoints, snapshots, kinds, summary, records, started, caps)
    document["rag"] = rag_note
    document["mean_turn_secs"] = {k: round(turn_secs[k] / n, 3) for k, n in kinds.items() if n}
    document["jsonl"] = str(jsonl)
    document["jsonl_lines"] = sum(1 for _ in jsonl.open(encoding="utf-8"))  # noqa: ASYNC230
    document["bot_replies_heard"] = speech.replies
    print_soak_report(document, console)
    if options.json_path is not None:
        write_json_document(options.json_path, document, console)
    return document


class _StandinProcess:
    """The stand-ins (``instant`` profile, synthetic speech) in a child process.

    Out of this process so that its memory, allocations and tasks are the bot's alone.
    """

    async def __aenter__(self) -> ServiceEndpoints:
        ctx = multiprocessing.get_context("spawn")
        self._conn, there = ctx.Pipe()
        self._process = ctx.Process(
            target=_standin_process_main, args=(there,), name="soak-standins"
        )
        self._process.start()
        there.close()
        kind, payload = await asyncio.to_thread(self._conn.recv)
        if kind != "ready":
            raise RuntimeError(f"the stand-ins did not start: {payload}")
        return payload

    async def __aexit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        await asyncio.to_thread(self._process.join, 15)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def _standin_process_main(conn: Any) -> None:
    from pipecat_speculative.offline_session import quiet_standin_server_errors

    logger.remove()
    logger.add(lambda m: os.write(2, str(m).encode()), level="ERROR")
    quiet_standin_server_errors()

    async def serve() -> None:
        async with StandinStack(LatencyProfile.instant(), speech="synthetic") as stack:
            conn.send(("ready", stack.endpoints))
            await asyncio.to_thread(conn.recv)

    try:
        asyncio.run(serve())
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


def _own_snapshot() -> tracemalloc.Snapshot:
    """What the session allocated: the soak's own checkpoints and tracemalloc left out."""
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    )


async def _wait_for_bot(speech: _BotSpeech, *, barge_in: bool) -> None:
    """Wait for the answer to start; then (unless barging in) for it to end, briefly each."""
    try:
        await asyncio.wait_for(speech.speaking.wait(), 1.5)
        if barge_in:
            await asyncio.sleep(0.02)
            return
        await asyncio.wait_for(speech.quiet.wait(), 3.0)
    except TimeoutError:
        pass
    await asyncio.sleep(0.03)


async def _rag(options: SoakOptions, out_dir: Path, console: Console) -> tuple[Any, str]:
    if not options.rag:
        return None, "off"
    from pipecat_speculative.bench_rag import SampleKnowledgeBase, rag_available
    from pipecat_speculative.rag.rag_config import RAGConfig

    if not rag_available():
        logger.warning("soak: the rag extra is not installed; no retrieval")
        return None, "off (rag extra missing)"
    knowledge = SampleKnowledgeBase()
    with console.status("embedding the sample document"):
        retriever = await knowledge.local_retriever(out_dir / "rag_store")
    return RAGConfig(retriever=retriever), "parallel, embedded local store (MiniLM)"


def _document(
    options: SoakOptions,
    checkpoints: list[_Checkpoint],
    snapshots: dict[str, tracemalloc.Snapshot],
    kinds: dict[str, int],
    summary: Any,
    records: int,
    started: float,
    caps: dict[str, int],
) -> dict[str, Any]:
    warm = next((c for c in checkpoints if c.label == "warm-up"), checkpoints[0])
    end = checkpoints[-1]
    after = [c for c in checkpoints if c.turn >= warm.turn]
    traced_slope = _slope_per_1000([(c.turn, c.traced_mb) for c in after])
    rss_slope = _slope_per_1000([(c.turn, c.rss_mb) for c in after])
    # A bounded structure filling up to its cap grows early and then stays: what still grows
    # over the second half of the run (after warm-up) is what has no bound.
    mid = after[len(after) // 2]
    paths = sorted({p for c in checkpoints for p in c.sizes})
    containers = []
    for p in paths:
        series = [c.sizes.get(p, 0) for c in checkpoints]
        w, m, e = warm.sizes.get(p, 0), mid.sizes.get(p, 0), end.sizes.get(p, 0)
        # Still growing late, by more than noise; a container with a bound only fills it.
        rising = e > m and e - w >= 8
        growing = rising and p not in caps
        if max(series) >= 16 or rising:
            containers.append(
                {
                    "path": p,
                    "warm_up": w,
                    "end": e,
                    "max": max(series),
                    "growing": growing,
                    "cap": caps.get(p),
                    "series": series,
                }
            )
    growth_sites: list[dict[str, Any]] = []
    if "warm-up" in snapshots and "end" in snapshots:
        for stat in snapshots["end"].compare_to(snapshots["warm-up"], "lineno")[:10]:
            frame = stat.traceback[0]
            growth_sites.append(
                {
                    "site": f"{frame.filename}:{frame.lineno}",
                    "size_diff_kb": round(stat.size_diff / 1024, 1),
                    "count_diff": stat.count_diff,
                }
            )
    span = max(1, end.turn - warm.turn)
    traced_growth = (end.traced_mb - warm.traced_mb) * 1000 / span
    late_growth = (end.traced_mb - mid.traced_mb) * 1000 / max(1, end.turn - mid.turn)
    flat = late_growth < FLAT_TRACED_MB_PER_1000 and not any(c["growing"] for c in containers)
    return {
        "schema": "pipecat-speculative/soak",
        "schema_version": 1,
        "turns": options.turns,
        "seed": options.seed,
        "turn_kinds": kinds,
        "turn_records": records,
        "speculations": {
            "started": summary.speculations_started,
            "adopted": summary.speculations_adopted,
            "withdrawn": summary.speculations_withdrawn,
        },
        # What the user heard, from the observer: not asserted, but a long session is where a
        # stray answer shows.
        "answers": {
            "turns": summary.turns,
            "answered_turns": summary.answered_turns,
            "multi_answer_turns": summary.multi_answer_turns,
            "late_answers": summary.late_answers,
            "playback_watchdog_fired": summary.playback_watchdog_fired,
        },
        "checkpoints": [c.row() for c in checkpoints],
        "containers": containers,
        "growth_sites": growth_sites,
        "verdict": {
            "flat": flat,
            "baseline": warm.label,
            "traced_mb_per_1000_turns": round(traced_growth, 3),
            "second_half_from_turn": mid.turn,
            "second_half_traced_mb_per_1000_turns": round(late_growth, 3),
            "traced_slope_mb_per_1000_turns": None
            if traced_slope is None
            else round(traced_slope, 3),
            "rss_slope_mb_per_1000_turns": None if rss_slope is None else round(rss_slope, 2),
            "growing_containers": [c["path"] for c in containers if c["growing"]],
            "filling_their_cap": [
                f"{c['path']} ({c['end']}/{c['cap']})"
                for c in containers
                if c["cap"] is not None and c["end"] > c["warm_up"] and c["end"] < c["cap"]
            ],
            "tasks_start_end": [checkpoints[0].tasks, end.tasks],
        },
        "context_trimmed_to": options.keep_context_messages,
        "runtime_secs": round(time.monotonic() - started, 1),
    }


def print_soak_report(document: dict[str, Any], console: Console) -> None:
    """Checkpoints, containers that grew or are large, growth sites and the verdict."""
    table = Table(title="soak checkpoints", title_justify="left")
    for name in ("turn", "label", "wall s", "RSS MB", "traced MB", "tasks", "context", "records"):
        table.add_column(name, justify="right")
    for c in document["checkpoints"]:
        table.add_row(
            str(c["turn"]),
            c["label"],
            f"{c['wall_secs']:.0f}",
            f"{c['rss_mb']:.1f}",
            f"{c['traced_mb']:.2f}",
            str(c["asyncio_tasks"]),
            str(c["context_messages"]),
            str(c["turn_records"]),
        )
    console.print(table)
    sizes = Table(
        title="containers (≥ 16 items at some checkpoint, or growing)", title_justify="left"
    )
    for name in ("path", "after warm-up", "end", "max", "cap", "growing"):
        sizes.add_column(name, justify="left" if name == "path" else "right")
    for c in document["containers"]:
        sizes.add_row(
            c["path"],
            str(c["warm_up"]),
            str(c["end"]),
            str(c["max"]),
            "" if c["cap"] is None else str(c["cap"]),
            "yes" if c["growing"] else "",
        )
    console.print(sizes, width=max(console.width, 140))
    if document["growth_sites"]:
        console.print(
            "top allocation growth, warm-up → end:\n  "
            + "\n  ".join(
                f"{g['size_diff_kb']:+.1f} KB ({g['count_diff']:+d}) {g['site']}"
                for g in document["growth_sites"]
            )
        )
    v = document["verdict"]
    console.print(
        f"turns {document['turns']} ({', '.join(f'{k} {n}' for k, n in document['turn_kinds'].items())}); "
        f"speculations {document['speculations']}; records {document['turn_records']}; "
        f"answers {document['answers']}\n"
        f"verdict: [bold]{'flat' if v['flat'] else 'GROWING'}[/] — traced "
        f"{v['traced_mb_per_1000_turns']:+.3f} MB per 1,000 turns after warm-up, "
        f"{v['second_half_traced_mb_per_1000_turns']:+.3f} from turn "
        f"{v['second_half_from_turn']} (slope {v['traced_slope_mb_per_1000_turns']}), RSS slope "
        f"{v['rss_slope_mb_per_1000_turns']} MB "
        f"per 1,000 turns, tasks start/end {v['tasks_start_end']}, growing containers "
        f"{v['growing_containers'] or 'none'} (filling a cap: {v['filling_their_cap'] or 'none'}); "
        f"runtime {document['runtime_secs']} s"
    )

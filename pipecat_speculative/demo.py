"""``pipecat-speculative demo``: the speculative bot on the built-in conversation, offline.

Starts the stand-ins (OpenAI, Deepgram, ElevenLabs with real Piper speech) on the reference
latency profile, renders the scenario's user speech with Piper (cached after the first run),
and plays it in real time to the bot the ready-made bot also uses
(:func:`~pipecat_speculative.pipeline_builder.build_bot_pipeline`, ``speculative``: Silero VAD,
the speculative strategy with the adaptive debounce and the free-patience commit, the
speculation-aware OpenAI service). While it runs, a progress line follows the conversation; each
turn's waterfall is printed as the turn timing observer closes it, then the summary.

The bot retrieves from the sample document (the "omni dimension" proposal) with the plugin's
parallel RAG: by default from the embedded local store in ``OUT/rag_store`` (what an offline
bot uses: local MiniLM embeddings, no server), or ``rag="pinecone"`` through the real pinecone
SDK against a Pinecone stand-in that takes the profile's ``rag_query_secs``. The RAG turn's
waterfall shows retrieval starting while the user is still speaking or in the pause.

Writes ``OUT/demo_turns.jsonl`` (turn timing records, readable by ``pipecat-speculative
report``), ``OUT/demo_conversation.wav`` (both sides, 16 kHz mono) and ``OUT/demo.log`` (the
debug log of the run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from loguru import logger
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pipecat_speculative.bench import score_session
from pipecat_speculative.bench_rag import (
    SampleKnowledgeBase,
    rag_available,
    widen_default_executor,
)
from pipecat_speculative.metrics.sinks.jsonl_sink import JSONLSink
from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord
from pipecat_speculative.offline_session import (
    SessionResult,
    quiet_standin_server_errors,
    run_scenario_session,
)
from pipecat_speculative.pipeline_builder import BotPipelineConfig, SystemKind
from pipecat_speculative.rag.base_retriever import BaseRetriever
from pipecat_speculative.rag.rag_config import RAGConfig
from pipecat_speculative.scenarios.player import TurnPlayback, render_scenario
from pipecat_speculative.scenarios.scenario import load_builtin_scenario, load_scenario
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.standin_stack import StandinStack

__all__ = [
    "DEFAULT_DEMO_SCENARIO",
    "DEMO_RAG_BACKENDS",
    "print_summary",
    "print_waterfall",
    "run_demo",
    "waterfall_rows",
]

DEFAULT_DEMO_SCENARIO = "reference_conversation"
"""The built-in scenario the demo plays by default."""

DEMO_RAG_BACKENDS: tuple[str, ...] = ("local", "pinecone", "none")
"""Where the demo retrieves from: the local store (default), the Pinecone stand-in, nowhere."""

_BAR_WIDTH = 24

_MOMENT_LABELS: tuple[tuple[str, str], ...] = (
    ("vad_stop", "VAD stop"),
    ("rag_start", "retrieval starts"),
    ("rag_done", "retrieval done (context released)"),
    ("rag_skip", "retrieval reused (cached)"),
    ("llm_request", "LLM start (answering inference)"),
    ("llm_first_token", "LLM first token"),
    ("first_sentence", "first sentence"),
    ("tts_request", "TTS start"),
    ("tts_first_audio", "TTS first audio"),
    ("commit", "commit (turn over)"),
    ("bot_started_speaking", "bot audio plays"),
)


def waterfall_rows(record: TurnRecord) -> list[tuple[float, str, str]]:
    """A turn's moments from t0, in time order: ``(ms, label, style)``.

    Speculations appear as their start and their outcome (adopted at the commit, or withdrawn).

    Args:
        record: The turn record.
    """
    rows: list[tuple[float, str, str]] = [(0.0, "end of speech (t0)", "bold")]
    for name, label in _MOMENT_LABELS:
        at = record.moment(name)
        if at is not None:
            # A retrieval prefetched while the user spoke starts before t0: the record clamps
            # it to 0 and keeps the real (negative) value in ``clamped``.
            at = record.clamped.get(f"moment:{name}", at)
            style = "bold green" if name == "bot_started_speaking" else ""
            if name.startswith("rag_"):
                style = "magenta"
            rows.append((at, label, style))
    for pos, spec in enumerate(record.speculations):
        # A speculation from an earlier pause of the turn started before t0: its record clamps
        # that to 0 and keeps the real (negative) value in ``clamped``.
        started = record.clamped.get(f"speculation[{pos}].started", spec.started_ms)
        resolved = record.clamped.get(f"speculation[{pos}].resolved", spec.resolved_ms)
        text = _short(spec.text or "", 16)
        if started is not None:
            rows.append((started, f"speculation #{spec.index} starts [{text}]", "cyan"))
        if resolved is not None:
            if spec.outcome == "withdrawn":
                reason = f" ({spec.reason})" if spec.reason else ""
                rows.append((resolved, f"speculation #{spec.index} withdrawn{reason}", "yellow"))
            elif spec.outcome == "adopted":
                rows.append((resolved, f"speculation #{spec.index} adopted", "cyan"))
    rows.sort(key=lambda r: r[0])
    return rows


def print_waterfall(record: TurnRecord, console: Console, *, false_commit: bool = False):
    """Print one turn's waterfall: every moment from the real end of speech, with a bar.

    Args:
        record: The turn record.
        console: Where to print.
        false_commit: The scenario says the user was not done when this turn was committed.
    """
    rows = waterfall_rows(record)
    total = record.stage("total")
    first = min([r[0] for r in rows] + [0.0])
    span = max([r[0] for r in rows] + [1.0]) - first
    kind = "speculative" if record.speculative else "normal"
    title = (
        f"turn {record.turn} [{kind}] {_short(record.user_text or '', 60)!r} → first audio "
        f"{'n/a' if total is None else f'{total:,.0f} ms'} after end of speech"
    )
    table = Table(title=title, title_justify="left", show_header=True, box=None, pad_edge=False)
    table.add_column("ms", justify="right", style="dim", no_wrap=True, min_width=6)
    table.add_column("moment", no_wrap=True, max_width=40)
    table.add_column("", no_wrap=True)
    for at, label, style in rows:
        filled = int(round(_BAR_WIDTH * (at - first) / span))
        bar = Text("▇" * filled + "·" * (_BAR_WIDTH - filled), style=style or "blue")
        table.add_row(f"{at:,.0f}", Text(label, style=style), bar)
    console.print(table)
    if false_commit:
        console.print(
            "  [bold yellow]false commit[/]: committed inside a pause, the user was not done; "
            "the rest of what they said is the next turn"
        )
    wasted = record.wasted_prompt_tokens + record.wasted_completion_tokens
    console.print(
        f"  answers {record.answers}, speculations {record.speculations_started} "
        f"({record.speculations_adopted} adopted, {record.speculations_withdrawn} withdrawn), "
        f"wasted {wasted} tokens, after commit "
        f"{_ms(record.stage('after_commit'))} ms, turn detection {_ms(record.stage('turn_detection'))} ms"
        + (
            f", first retrieval start → context released {_ms(record.stage('rag'))} ms"
            if record.stage("rag") is not None
            else ""
        )
        + "\n"
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def print_summary(result: SessionResult, console: Console):
    """Print the reference-style summary: latency, cancellation rate, debounce changes, answers."""
    summary: SessionSummary | None = result.summary
    records = result.records
    totals = [r.stage("total") for r in records if r.stage("total") is not None]
    console.rule("summary")
    console.print(
        f"turns {len(records)} committed, {sum(1 for r in records if r.answers == 1)} answered "
        f"exactly once, {sum(1 for r in records if r.answers == 0)} silent, "
        f"{sum(1 for r in records if r.answers > 1)} answered twice or more"
    )
    console.print(
        "latency end of speech → first bot audio: "
        + ", ".join(f"turn {r.turn} {_ms(r.stage('total'))} ms" for r in records)
        + f" | p50 {_ms(_pct(totals, 50))} ms, p95 {_ms(_pct(totals, 95))} ms"
    )
    if summary is not None:
        rate = "n/a" if summary.cancel_rate is None else f"{summary.cancel_rate:.0%}"
        console.print(
            f"speculations {summary.speculations_started} started, {summary.speculations_adopted} "
            f"adopted, {summary.speculations_withdrawn} withdrawn; cancellation rate {rate}; "
            f"wasted {summary.wasted_prompt_tokens}+{summary.wasted_completion_tokens} tokens "
            f"(prompt+completion), {summary.wasted_tts_characters} TTS characters"
            + (
                f"; {summary.withdrawn_without_usage} withdrawn with no usage reported "
                "(their waste is unknown, not 0)"
                if summary.withdrawn_without_usage
                else ""
            )
        )
        for warmup in summary.warmups:
            console.print(
                f"warmup {warmup.service}: {warmup.secs * 1000:.0f} ms "
                f"({'ok' if warmup.ok else 'FAILED'})"
            )
        if summary.debounce_history:
            for change in summary.debounce_history:
                console.print(
                    f"debounce {change.old_secs * 1000:.0f} → {change.new_secs * 1000:.0f} ms "
                    f"at turn {change.at_turn} ({change.reason}; window cancel rate "
                    f"{change.window_cancel_rate:.0%} over {change.samples})"
                )
        else:
            now = "n/a" if summary.debounce_secs is None else f"{summary.debounce_secs * 1000:.0f}"
            console.print(f"debounce unchanged at {now} ms (too few samples to retune)")
    false_commits = [t.record.turn for t in score_session(result) if t.false_commit]
    console.print(
        f"false commits (committed while the user was not done): {len(false_commits)}"
        + (f" (turns {', '.join(map(str, false_commits))})" if false_commits else "")
    )
    if result.rag_counters:
        c = result.rag_counters
        console.print(
            f"retrieval: {c['retrievals_started']} started, {c['retrievals_joined']} joined in "
            f"flight, {c['retrievals_reused']} reused, {c['contexts_dropped']} contexts dropped, "
            f"{c['timeouts']} timeouts, {c['errors']} errors"
        )
    console.print(f"session wall time {result.wall_secs:.1f} s")


async def _demo_retriever(
    knowledge: SampleKnowledgeBase, backend: str, stack: StandinStack, out_dir: Path
) -> tuple[BaseRetriever, str]:
    """The demo bot's retriever on the sample document (embedded once, stored idempotently)."""
    if backend == "pinecone":
        assert stack.pinecone is not None
        widen_default_executor()
        retriever = await knowledge.pinecone_retriever(stack.pinecone)
        return retriever, f"the Pinecone stand-in (pinecone SDK, {stack.pinecone.base_url})"
    directory = out_dir / "rag_store"
    return await knowledge.local_retriever(directory), f"the local store {directory}"


def _configure_logging(log_path: Path):
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logger.add(str(log_path), level="DEBUG", mode="w")
    quiet_standin_server_errors(log_path.with_suffix(".aiohttp.log"))


async def run_demo(
    *,
    out_dir: Path = Path("out"),
    scenario: str = DEFAULT_DEMO_SCENARIO,
    profile_path: Path | str | None = None,
    console: Console | None = None,
    configure_logging: bool = True,
    playback_speed: float = 1.0,
    rag: str = "local",
) -> SessionResult:
    """Run the demo and print its waterfalls and summary.

    Args:
        out_dir: Where the JSONL, WAV and log go (created if needed).
        scenario: A built-in scenario name, or a path to a scenario YAML file.
        profile_path: A latency profile name (reference, slow, fast) or file; reference when None.
        console: Where to print; a new rich console by default.
        configure_logging: Send loguru's debug log to ``OUT/demo.log`` and only warnings to the
            terminal (the CLI does; tests keep their own logging).
        playback_speed: Speed of the bot's playback; real time by default (the WAV is only
            faithful in real time).
        rag: Where the bot retrieves the sample document from (:data:`DEMO_RAG_BACKENDS`):
            ``local`` (the embedded store in ``OUT/rag_store``), ``pinecone`` (the real SDK
            against a Pinecone stand-in on the profile's ``rag_query_secs``) or ``none``.

    Returns:
        The session result.
    """
    console = console or Console()
    if rag not in DEMO_RAG_BACKENDS:
        raise ValueError(f"rag must be one of {', '.join(DEMO_RAG_BACKENDS)}, not {rag!r}")
    if rag != "none" and not rag_available():
        logger.warning("demo: the rag and pinecone extras are not installed; no retrieval")
        rag = "none"
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    if configure_logging:
        _configure_logging(out_dir / "demo.log")
    chosen = (
        load_scenario(scenario)
        if Path(scenario).suffix in (".yaml", ".yml")
        else (load_builtin_scenario(scenario))
    )
    profile = LatencyProfile.load(profile_path) if profile_path else LatencyProfile.reference()
    jsonl_path = out_dir / "demo_turns.jsonl"
    wav_path = out_dir / "demo_conversation.wav"
    jsonl_path.unlink(missing_ok=True)  # noqa: ASYNC240 - the JSONL sink appends; one run per file

    started = time.monotonic()
    with console.status("rendering the user's speech with Piper (cached after the first run)"):
        rendered = await render_scenario(chosen)
    console.print(
        f"[bold]{chosen.name}[/]: {len(rendered.turns)} user turns, "
        f"{sum(t.duration_secs for t in rendered.turns):.1f} s of user speech; "
        f"rendered in {time.monotonic() - started:.1f} s"
    )
    config = BotPipelineConfig(
        system=SystemKind.SPECULATIVE, sinks=[JSONLSink(jsonl_path)], log_turns=False
    )
    knowledge = SampleKnowledgeBase() if rag != "none" else None
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[dim]{task.completed}/{task.total} turns answered"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    playbacks: list[TurnPlayback] = []

    def _is_false_commit(record: TurnRecord) -> bool:
        probe = SessionResult(SystemKind.SPECULATIVE, "", "", records=[record], playbacks=playbacks)
        return any(t.false_commit for t in score_session(probe))

    async with StandinStack(profile, pinecone=rag == "pinecone") as stack:
        if knowledge is not None:
            retriever, where = await _demo_retriever(knowledge, rag, stack, out_dir)
            config.rag = RAGConfig(retriever=retriever)
            console.print(
                f"knowledge base: {knowledge.documents[0].name} "
                f"({len(await knowledge.records())} chunks) in {where}; parallel RAG"
            )
        with progress:
            task = progress.add_task("starting the bot", total=len(rendered.turns))

            def on_user_turn(playback: TurnPlayback):
                playbacks.append(playback)
                progress.update(
                    task,
                    description=f"user turn {playback.turn.index + 1}/{len(rendered.turns)}: "
                    f"{playback.turn.turn.text[:50]!r}",
                )

            def on_turn(record: TurnRecord):
                progress.update(task, advance=1, description="waiting for the user")
                print_waterfall(record, progress.console, false_commit=_is_false_commit(record))

            result = await run_scenario_session(
                rendered,
                stack,
                config,
                record_audio=True,
                playback_speed=playback_speed,
                on_turn=on_turn,
                on_user_turn=on_user_turn,
            )
    print_summary(result, console)
    written = result.write_wav(wav_path)
    console.print(
        f"wrote {jsonl_path}" + (f", {written}" if written else "") + f", {out_dir / 'demo.log'}"
    )
    console.print(f"demo finished in {time.monotonic() - started:.1f} s")
    return result

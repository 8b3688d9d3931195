"""Read a turn timing JSONL file: a terminal table and a PNG of the turns.

``pipecat-speculative report FILE.jsonl [--png PATH]`` prints every turn's stages, p50/p95 per
stage and the speculation summary (rich), and writes a PNG with a waterfall of each turn's stages
and the latency over the turns (matplotlib, headless).

Percentiles are linear interpolation over the turns where the stage is known; a stage never
observed shows ``n/a`` rather than 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pipecat_speculative.metrics.turn_record import (
    SCHEMA_NAME,
    RecordError,
    SessionSummary,
    TurnRecord,
)

__all__ = [
    "REPORT_STAGES",
    "ReportInputError",
    "StageStats",
    "TimingReport",
    "headless_pyplot",
    "load_report",
    "print_report",
    "render_png",
    "run_report",
    "save_figure",
]

REPORT_STAGES: tuple[tuple[str, str], ...] = (
    ("speech_to_llm_start", "speech→LLM"),
    ("llm_first_token", "LLM 1st tok"),
    ("first_sentence", "1st sentence"),
    ("llm_to_tts_start", "LLM→TTS"),
    ("tts_first_audio", "TTS 1st audio"),
    ("playout", "playout"),
    ("total", "total"),
    ("turn_detection", "turn detect"),
    ("after_commit", "after commit"),
    ("rag", "RAG"),
)
"""Stages shown in the table, with their column labels."""

_NARROW_STAGES: tuple[tuple[str, str], ...] = (
    ("total", "total"),
    ("speech_to_llm_start", "→LLM"),
    ("llm_first_token", "tok"),
    ("first_sentence", "sent"),
    ("tts_first_audio", "TTS"),
    ("turn_detection", "commit"),
)
"""The columns kept on a narrow terminal (the stages that add up to most of the total)."""

_WIDE_TABLE_COLUMNS = 140
"""Below this console width the turns table uses :data:`_NARROW_STAGES`."""

# The stages that tile t0 → first audio, drawn as the waterfall, with their colours.
_WATERFALL: tuple[tuple[str, str, str, str], ...] = (
    ("speech→LLM start", "anchor", "llm_request", "#9e9e9e"),
    ("LLM first token", "llm_request", "llm_first_token", "#1f77b4"),
    ("first sentence", "llm_first_token", "first_sentence", "#17becf"),
    ("LLM→TTS start", "first_sentence", "tts_request", "#bcbd22"),
    ("TTS first audio", "tts_request", "tts_first_audio", "#ff7f0e"),
    ("playout", "tts_first_audio", "bot_started_speaking", "#2ca02c"),
)


_COMPLETION_LABELS = {
    "playback_done": "done",
    "playback_watchdog": "watchdog",
    "interrupted": "interrupted",
    "superseded": "superseded",
    "session_end": "ended",
}


class ReportInputError(ValueError):
    """A JSONL file the report cannot read: the message names the file, the line and the field.

    Parameters:
        path: The file.
        line: 1-based line number, or None for the file as a whole.
        field: The offending field, or None.
        problem: What is wrong.
    """

    def __init__(self, path: str | Path, line: int | None, field: str | None, problem: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"field {field!r}: {problem}" if field else problem
        super().__init__(f"{where}: {what}")


@dataclass(frozen=True)
class StageStats:
    """Percentiles of one stage over the turns where it is known.

    Parameters:
        stage: Stage name.
        count: Turns where it is known.
        p50: Median, ms.
        p95: 95th percentile, ms.
    """

    stage: str
    count: int
    p50: float | None
    p95: float | None


@dataclass
class TimingReport:
    """What a JSONL file holds.

    Parameters:
        turns: Turn records, in file order.
        sessions: Session records, in file order.
        skipped: Lines that were not records this version reads.
    """

    turns: list[TurnRecord] = field(default_factory=list)
    sessions: list[SessionSummary] = field(default_factory=list)
    skipped: int = 0

    def stage_stats(self) -> list[StageStats]:
        """p50/p95 of every reported stage."""
        stats = []
        for stage, _ in REPORT_STAGES:
            values = [t.stage(stage) for t in self.turns]
            known = [v for v in values if v is not None]
            if known:
                p50, p95 = (float(v) for v in np.percentile(known, [50, 95]))
                stats.append(StageStats(stage, len(known), p50, p95))
            else:
                stats.append(StageStats(stage, 0, None, None))
        return stats

    def speculation_totals(self) -> dict[str, float | int | None]:
        """Speculation accounting over the file.

        Taken from the session records when there are any (they also count speculations of turns
        that were never committed), else summed over the turns.
        """
        if self.sessions:
            started = sum(s.speculations_started for s in self.sessions)
            adopted = sum(s.speculations_adopted for s in self.sessions)
            withdrawn = sum(s.speculations_withdrawn for s in self.sessions)
            tool_calls = sum(s.tool_call_withdrawals for s in self.sessions)
            wasted_prompt = sum(s.wasted_prompt_tokens for s in self.sessions)
            wasted_completion = sum(s.wasted_completion_tokens for s in self.sessions)
            wasted_chars = sum(s.wasted_tts_characters for s in self.sessions)
            watchdog = sum(s.playback_watchdog_fired for s in self.sessions)
            unreported = sum(s.withdrawn_without_usage for s in self.sessions)
        else:
            specs = [s for t in self.turns for s in t.speculations]
            started = len(specs)
            adopted = sum(1 for s in specs if s.outcome == "adopted")
            withdrawn = sum(1 for s in specs if s.outcome == "withdrawn")
            tool_calls = sum(
                1 for s in specs if s.outcome == "withdrawn" and not s.counts_toward_cancel_rate
            )
            wasted_prompt = sum(t.wasted_prompt_tokens for t in self.turns)
            wasted_completion = sum(t.wasted_completion_tokens for t in self.turns)
            wasted_chars = sum(t.wasted_tts_characters for t in self.turns)
            watchdog = sum(1 for t in self.turns if t.playback_watchdog_fired)
            unreported = sum(t.withdrawn_without_usage for t in self.turns)
        counted = adopted + withdrawn - tool_calls
        return {
            "started": started,
            "adopted": adopted,
            "withdrawn": withdrawn,
            "tool_call_withdrawals": tool_calls,
            "cancel_rate": (withdrawn - tool_calls) / counted if counted else None,
            "hit_rate": adopted / (adopted + withdrawn) if adopted + withdrawn else None,
            "wasted_prompt_tokens": wasted_prompt,
            "wasted_completion_tokens": wasted_completion,
            "wasted_tts_characters": wasted_chars,
            "withdrawn_without_usage": unreported,
            "playback_watchdog_fired": watchdog,
            "unanswered_turns": sum(1 for t in self.turns if t.answers == 0),
            "multi_answer_turns": sum(1 for t in self.turns if t.answers > 1),
        }


def load_report(path: str | Path) -> TimingReport:
    """Read turn and session records from a JSONL file.

    Lines of other schemas, and records of this schema that this version does not know, are
    skipped and counted: a log may interleave them. Anything else that is wrong stops the read,
    because a report over silently dropped turns would look fine and be wrong.

    Raises:
        ReportInputError: The file cannot be read, a line is not a JSON object, a turn or session
            record has a missing or mistyped field or a newer schema version, or the file holds
            no turn timing record at all.
    """
    report = TimingReport()
    lines = 0
    try:
        with Path(path).open(encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if text.strip():
                    lines += 1
                    _read_line(report, path, number, text)
    except OSError as e:
        raise ReportInputError(path, None, None, f"cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ReportInputError(path, None, None, "not a UTF-8 text file") from e
    if not report.turns and not report.sessions:
        problem = (
            "the file is empty" if lines == 0 else f"no {SCHEMA_NAME} records in its {lines} lines"
        )
        raise ReportInputError(path, None, None, problem)
    return report


def _read_line(report: TimingReport, path: str | Path, number: int, text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportInputError(path, number, None, f"not JSON ({e.msg}, column {e.colno})") from e
    if not isinstance(data, dict):
        raise ReportInputError(path, number, None, "not a JSON object")
    if data.get("schema") != SCHEMA_NAME:
        report.skipped += 1
        return
    reader = {"turn": TurnRecord, "session": SessionSummary}.get(data.get("record"))
    if reader is None:
        report.skipped += 1
        return
    try:
        record = reader.from_dict(data)
    except RecordError as e:
        raise ReportInputError(path, number, e.field, e.problem) from e
    if isinstance(record, TurnRecord):
        report.turns.append(record)
    else:
        report.sessions.append(record)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _pct(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_report(report: TimingReport, console: Console | None = None):
    """Print the turns, the per-stage percentiles and the speculation summary."""
    console = console or Console()
    many_sessions = len({t.session_id for t in report.turns}) > 1
    narrow = console.width < _WIDE_TABLE_COLUMNS
    stages = _NARROW_STAGES if narrow else REPORT_STAGES
    title = f"Turns ({len(report.turns)}, ms{', narrow terminal: main stages' if narrow else ''})"
    turns = Table(title=title, show_lines=False)
    if many_sessions:
        turns.add_column("session", style="dim")
    turns.add_column("turn", justify="right")
    if not narrow:
        turns.add_column("kind")
    for _, label in stages:
        turns.add_column(label, justify="right")
    turns.add_column("spec a/w" if not narrow else "a/w", justify="right")
    turns.add_column("answers" if not narrow else "ans", justify="right")
    turns.add_column("end")
    for t in report.turns:
        kind = "spec" if t.speculative else "normal"
        answers = str(t.answers) if t.answers == 1 else f"[bold red]{t.answers}[/]"
        end = _COMPLETION_LABELS.get(t.completion, t.completion)
        if t.playback_watchdog_fired:
            end = f"[yellow]{end}[/]"
        turns.add_row(
            *([t.session_id[:8]] if many_sessions else []),
            str(t.turn),
            *([kind] if not narrow else []),
            *(_ms(t.stage(stage)) for stage, _ in stages),
            f"{t.speculations_adopted}/{t.speculations_withdrawn}",
            answers,
            end,
        )
    console.print(turns)

    stats = Table(title="Stages (ms)")
    stats.add_column("stage")
    stats.add_column("n", justify="right")
    stats.add_column("p50", justify="right")
    stats.add_column("p95", justify="right")
    for s in report.stage_stats():
        stats.add_row(s.stage, str(s.count), _ms(s.p50), _ms(s.p95))
    console.print(stats)

    totals = report.speculation_totals()
    spec = Table(title="Speculation")
    spec.add_column("what")
    spec.add_column("value", justify="right")
    for key in ("started", "adopted", "withdrawn", "tool_call_withdrawals"):
        spec.add_row(key.replace("_", " "), str(totals[key]))
    spec.add_row("cancel rate (excl. tool calls)", _pct(totals["cancel_rate"]))
    spec.add_row("hit rate", _pct(totals["hit_rate"]))
    spec.add_row(
        "wasted tokens (prompt+completion)",
        f"{totals['wasted_prompt_tokens']}+{totals['wasted_completion_tokens']}",
    )
    spec.add_row("withdrawals with no usage reported", str(totals["withdrawn_without_usage"]))
    spec.add_row("wasted TTS characters", str(totals["wasted_tts_characters"]))
    spec.add_row("unanswered turns", str(totals["unanswered_turns"]))
    spec.add_row("turns answered more than once", str(totals["multi_answer_turns"]))
    spec.add_row("playback watchdog fired", str(totals["playback_watchdog_fired"]))
    for session in report.sessions:
        if session.debounce_history:
            history = " → ".join(
                [f"{session.debounce_history[0].old_secs * 1000:.0f}"]
                + [f"{d.new_secs * 1000:.0f}" for d in session.debounce_history]
            )
            spec.add_row(f"debounce ms ({session.session_id[:8]})", history)
        for w in session.warmups:
            spec.add_row(
                f"warmup {w.service}", f"{w.secs * 1000:.0f} ms {'ok' if w.ok else 'FAILED'}"
            )
    console.print(spec)
    if report.skipped:
        console.print(f"[dim]{report.skipped} lines skipped (not turn timing records)[/]")


def render_png(report: TimingReport, path: str | Path) -> Path:
    """Write the waterfall and latency-over-turns figure.

    Returns:
        The path written.
    """
    plt = headless_pyplot()
    path = Path(path)
    turns = report.turns
    n = max(len(turns), 1)
    height = min(2.5 + 0.32 * n, 30.0)
    fig, (ax_fall, ax_lat) = plt.subplots(
        2, 1, figsize=(11, height + 3.5), gridspec_kw={"height_ratios": [height, 3.5]}
    )

    labels = []
    for row, t in enumerate(turns):
        labels.append(f"{t.session_id[:6]}·{t.turn}{' S' if t.speculative else ''}")

        def at(name: str, turn: TurnRecord = t) -> float | None:
            if name == "anchor":
                return 0.0 if turn.anchor == "end_of_speech" else None
            return turn.moment(name)

        for label, start, end, colour in _WATERFALL:
            a, b = at(start), at(end)
            if a is None or b is None or b <= a:
                continue
            ax_fall.barh(row, b - a, left=a, color=colour, height=0.6, label=label)
        for n, spec in enumerate(t.speculations):
            if spec.started_ms is None:
                continue
            # A speculation from an earlier pause of the turn started before t0: the record
            # clamps it to 0 and keeps the real value in ``clamped``, which is what is drawn.
            start_ms = t.clamped.get(f"speculation[{n}].started", spec.started_ms)
            end_ms = t.clamped.get(f"speculation[{n}].resolved", spec.resolved_ms)
            if end_ms is None:
                end_ms = start_ms
            colour = "#2ca02c" if spec.outcome == "adopted" else "#d62728"
            ax_fall.plot(
                [start_ms, max(end_ms, start_ms + 1)],
                [row + 0.38, row + 0.38],
                color=colour,
                linewidth=2.5,
                solid_capstyle="butt",
            )
        commit = t.moment("commit")
        if commit is not None:
            ax_fall.plot([commit, commit], [row - 0.4, row + 0.4], color="black", linewidth=1.5)

    handles, names = ax_fall.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=False))
    from matplotlib.lines import Line2D

    unique["commit"] = Line2D([], [], color="black", linewidth=1.5)
    unique["speculation adopted"] = Line2D([], [], color="#2ca02c", linewidth=2.5)
    unique["speculation withdrawn"] = Line2D([], [], color="#d62728", linewidth=2.5)
    ax_fall.legend(
        unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8
    )
    ax_fall.set_yticks(range(len(turns)), labels, fontsize=8)
    ax_fall.invert_yaxis()
    ax_fall.axvline(0, color="black", linewidth=0.8, alpha=0.5)
    ax_fall.set_xlabel("ms from real end of speech (t0); speculations of earlier pauses left of 0")
    ax_fall.set_title("Turn waterfall: end of speech → first bot audio")
    ax_fall.grid(axis="x", alpha=0.3)

    xs = list(range(len(turns)))
    for stage, style in (("total", "o-"), ("after_commit", "s--"), ("turn_detection", "^:")):
        ys = [t.stage(stage) for t in turns]
        ax_lat.plot(
            [x for x, y in zip(xs, ys, strict=True) if y is not None],
            [y for y in ys if y is not None],
            style,
            label=stage.replace("_", " "),
            markersize=4,
        )
    from matplotlib.ticker import MaxNLocator

    ax_lat.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_lat.set_xlabel("turn (file order)")
    ax_lat.set_ylabel("ms")
    ax_lat.set_ylim(bottom=0)
    ax_lat.set_title("Latency over turns")
    ax_lat.grid(alpha=0.3)

    ax_lat.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save_figure(fig, path)


def headless_pyplot():
    """``matplotlib.pyplot`` on the Agg backend: PNGs without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run_report(path: str | Path, *, png: str | Path | None = None, console: Console | None = None):
    """Load ``path``, print the report and write the PNG (next to the file by default).

    Returns:
        The report and the PNG path.
    """
    console = console or Console()
    report = load_report(path)
    print_report(report, console)
    png_path = Path(png) if png is not None else Path(path).with_suffix(".png")
    render_png(report, png_path)
    console.print(f"waterfall and latency plot written to {png_path}")
    return report, png_path

"""What-if tuning: replay recorded pauses through the real decision core under other settings.

``pipecat-speculative tune TURNS.jsonl... [--png PATH] [--write-profile PATH]`` reads the turn
timing JSONL the observer writes in production, rebuilds each user turn's pauses (how long the
user was silent, and whether they went on after), and replays them through
:class:`~pipecat_speculative.turns.speculation_planner.SpeculationPlanner` (with its adaptive
debounce and commit patience) on virtual time, once per setting of a grid:

- **speculation delay**: the debounce's initial and minimum delay (it may still grow);
- **commit floor**: the commit rule's silence floor (the free-patience floor, Pipecat's speech
  timeout), also the floor of commit patience;
- **resume backoff**: ``SpeculativeTurnParams.resume_backoff``.

What is replayed, and what is taken as recorded::

    recorded:   speech |<- silence 0.7 s, resumed ->| speech |<- silence (commit) ... ->|
    replayed:   VAD stop ─ debounce timer ─ start ── VAD start + words ─ withdraw ... commit
                the commit rule fires at VAD stop + floor; the planner holds it until the
                speculation's answer is ready (its recorded readiness), never past the ceiling

- The planner decides everything (when to speculate, withdraw, hold and release the commit); this
  module only executes its actions: timers on a virtual clock, the commit rule as a timer of
  ``floor`` after each VAD stop, or at the first final transcript after it (what Pipecat's speech
  timeout does), and the answer's readiness reported ``readiness`` after a speculation starts.
- A commit that comes in a pause the user went on after is a **cut-in**: the rest of the turn
  then starts a new planner turn, as it would live (the planner learns patience from it).
  A cut-in recorded in production (the next turn started within ``cut_in_secs`` of the commit)
  is replayed as one turn whose pause the user went on after.
- Transcripts come when they came: words of resumed speech at their recorded delay, and a final
  transcript that came in the pause at its recorded delay, saying the same as the interim before
  it or more (the planner then withdraws a speculation on the interim as ``extended`` and
  speculates again). Tool calls, LLM failures and ``mismatch`` withdrawals are not replayed.

Latency is measured from the turn's last VAD stop to the answer's first sentence (everything
after it, TTS and playout, is the same under every setting): the speculation's readiness when it
is adopted (no sooner than the commit), else the commit plus the full inference. **Stock** is
Pipecat without speculation: a commit at the stock floor (0.6 s) and the full inference after it.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from loguru import logger
from rich.console import Console
from rich.table import Table

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.metrics.report import (
    ReportInputError,
    TimingReport,
    headless_pyplot,
    load_report,
    save_figure,
)
from pipecat_speculative.metrics.turn_record import PauseEntry, SessionSummary, TurnRecord
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.commit_patience import PatienceParams
from pipecat_speculative.turns.speculation_events import SpeculationRecord
from pipecat_speculative.turns.speculation_planner import (
    ArmTimer,
    CancelTimer,
    FinalizeCommit,
    PlannerAction,
    SpeculationPlanner,
    SpeculativeTurnParams,
    StartSpeculation,
    TimerKind,
)

__all__ = [
    "DEFAULT_BACKOFFS",
    "DEFAULT_DELAYS",
    "DEFAULT_FLOORS",
    "STOCK_FLOOR_SECS",
    "ReplayPause",
    "ReplayResult",
    "ReplayTurn",
    "TuneResult",
    "TuneSetting",
    "load_replay_turns",
    "print_tune",
    "recommend",
    "render_tune_png",
    "replay",
    "replay_turns",
    "run_tune",
    "tune",
    "write_profile",
]

DEFAULT_DELAYS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
"""Speculation delays tried (seconds after VAD stop)."""

DEFAULT_FLOORS: tuple[float, ...] = (0.3, 0.45, 0.6, 0.8)
"""Commit floors tried (seconds after VAD stop)."""

DEFAULT_BACKOFFS: tuple[float, ...] = (1.0, 1.5, 2.0)
"""Resume backoffs tried."""

STOCK_FLOOR_SECS = 0.6
"""Pipecat's default speech timeout: the stock bot commits there and only then infers."""

UNKNOWN_SPEECH_SECS = 1.0
"""Length given to speech whose length was not recorded (the first of a turn, or the words after
a recorded cut-in). Only the order of events depends on it, not a measured figure."""

UNKNOWN_WORDS_SECS = 0.25
"""When the words of speech recorded without that detail arrive (after a recorded cut-in)."""

_TURN_GAP_SECS = 30.0
"""Virtual time between two turns: longer than any timer, so turns never interact by time."""

_SETTLE_SECS = 30.0
"""A turn's last pause is replayed at most this long (the commit ceiling ends it well before)."""


@dataclass(frozen=True)
class ReplayPause:
    """One pause to replay, in seconds.

    Parameters:
        silence_secs: VAD stop → VAD start of the resumed speech (``resumed``), or → the
            recorded commit for a turn's last pause (the user stayed silent at least that long).
        resumed: The user went on after it.
        speech_secs: The resumed speech, VAD start → next VAD stop.
        words_secs: VAD start → its first words; None: no words (a blip).
        final_secs: VAD stop → the final transcript of the speech before the pause; None: it
            came before the VAD stop.
        final_matched: That final said what the interim before it said; None: no interim.
        readiness_secs: Readiness of a speculation in this pause, when it differs from the
            turn's (the pauses of a recorded cut-in come from two records, each with its own).
    """

    silence_secs: float
    resumed: bool
    speech_secs: float = UNKNOWN_SPEECH_SECS
    words_secs: float | None = UNKNOWN_WORDS_SECS
    final_secs: float | None = None
    final_matched: bool | None = None
    readiness_secs: float | None = None


@dataclass(frozen=True)
class ReplayTurn:
    """One user turn as the replay sees it: its pauses and what its answer costs.

    Parameters:
        session_id: The recorded session (one planner per session: the debounce learns per call).
        turns: The recorded turn indexes it was built from (two or more: a recorded cut-in).
        pauses: The pauses, in order; the last is the one that ended the turn.
        readiness_secs: Inference start → first sentence of the answer (the held commit waits
            for it, and a commit without an adopted speculation pays it after the commit).
        tokens_per_speculation: Prompt + completion tokens one speculation of this turn costs,
            None when nothing was reported.
        first_speech_secs: The first speech, VAD start → VAD stop (None: not recorded).
        first_words_secs: Its VAD start → its first words (None: not recorded; taken as at once).
    """

    session_id: str
    turns: tuple[int, ...]
    pauses: tuple[ReplayPause, ...]
    readiness_secs: float
    tokens_per_speculation: float | None = None
    first_speech_secs: float | None = None
    first_words_secs: float | None = None


@dataclass(frozen=True)
class TuneSetting:
    """One point of the grid.

    Parameters:
        delay_secs: Speculation delay: the debounce starts there and never goes lower.
        floor_secs: Commit floor: the commit rule's silence floor and commit patience's floor.
        backoff: Resume backoff.
    """

    delay_secs: float
    floor_secs: float
    backoff: float

    @property
    def label(self) -> str:
        """Short label: ``d0.2 f0.6 b1.5``."""
        return f"d{self.delay_secs:g} f{self.floor_secs:g} b{self.backoff:g}"

    def params(self, base: SpeculativeTurnParams | None = None) -> SpeculativeTurnParams:
        """The strategy parameters of this setting, on top of ``base`` (the defaults)."""
        base = base or SpeculativeTurnParams()
        debounce = replace(
            base.debounce,
            initial_secs=self.delay_secs,
            min_secs=self.delay_secs,
            max_secs=max(base.debounce.max_secs, self.delay_secs),
        )
        patience = replace(
            base.patience,
            floor_secs=self.floor_secs,
            max_secs=max(base.patience.max_secs, self.floor_secs),
        )
        return replace(base, debounce=debounce, patience=patience, resume_backoff=self.backoff)


@dataclass
class ReplayResult:
    """What one setting would have done on the replayed turns.

    Parameters:
        setting: The setting (None: stock).
        turns: Turns replayed.
        latencies_secs: Per turn, last VAD stop → the answer's first sentence.
        saved_secs: Per turn, stock latency minus this one.
        started: Speculations started.
        adopted: Adopted.
        withdrawn: Withdrawn (all reasons).
        counted_withdrawn: Withdrawn in a way that counts toward the cancel rate.
        cut_ins: Commits in a pause the user went on after.
        wasted_tokens: Tokens of the withdrawn speculations (turns without a token count add 0;
            see ``tokens_unknown``).
        tokens_unknown: Withdrawn speculations of turns with no token count.
        planners: The planner of each session after the replay (for a profile).
    """

    setting: TuneSetting | None
    turns: int = 0
    latencies_secs: list[float] = field(default_factory=list)
    saved_secs: list[float] = field(default_factory=list)
    started: int = 0
    adopted: int = 0
    withdrawn: int = 0
    counted_withdrawn: int = 0
    cut_ins: int = 0
    wasted_tokens: float = 0.0
    tokens_unknown: int = 0
    planners: list[SpeculationPlanner] = field(default_factory=list, repr=False)

    @property
    def cancel_rate(self) -> float | None:
        """Counted withdrawals / (adopted + counted withdrawals), None without speculations."""
        resolved = self.adopted + self.counted_withdrawn
        return self.counted_withdrawn / resolved if resolved else None

    @property
    def mean_latency_secs(self) -> float:
        """Mean latency over the turns."""
        return statistics.fmean(self.latencies_secs) if self.latencies_secs else 0.0

    @property
    def mean_saved_secs(self) -> float:
        """Mean latency saved against stock."""
        return statistics.fmean(self.saved_secs) if self.saved_secs else 0.0

    @property
    def wasted_tokens_per_turn(self) -> float | None:
        """Wasted tokens per turn, None when no turn had a token count and something was wasted."""
        if self.tokens_unknown and not self.wasted_tokens:
            return None
        return self.wasted_tokens / self.turns if self.turns else 0.0


@dataclass
class TuneResult:
    """The grid's results, the current setting and the recommendation.

    Parameters:
        stock: Stock Pipecat on the same turns.
        results: One per setting, in grid order.
        current: The setting in force when the file was recorded.
        current_source: Where ``current`` comes from (the file, or the defaults).
        recommended: The recommended setting.
        rule: The rule that picked it, in words.
        turns: The replayed turns.
        notes: What the input lacked and how it was handled.
    """

    stock: ReplayResult
    results: list[ReplayResult]
    current: TuneSetting
    current_source: str
    recommended: TuneSetting
    rule: str
    turns: list[ReplayTurn]
    notes: list[str] = field(default_factory=list)

    def result(self, setting: TuneSetting) -> ReplayResult:
        """The result of a setting of the grid."""
        return next(r for r in self.results if r.setting == setting)


# ---------------------------------------------------------------------- reading the records


def load_replay_turns(
    paths: Sequence[str | Path], *, cut_in_secs: float | None = None
) -> tuple[list[ReplayTurn], list[SessionSummary], list[str]]:
    """Read JSONL files and build the turns to replay.

    Returns:
        The turns, the session records, and notes on what was missing.

    Raises:
        ReportInputError: A file cannot be read (see :func:`load_report`), or no turn in it holds
            the pauses a replay needs (written before they were recorded).
    """
    turns: list[ReplayTurn] = []
    sessions: list[SessionSummary] = []
    notes: list[str] = []
    for path in paths:
        report = load_report(path)
        built, file_notes = replay_turns(report, cut_in_secs=cut_in_secs)
        if not built:
            raise ReportInputError(path, None, None, _nothing_to_replay(report))
        turns += built
        sessions += report.sessions
        notes += [f"{path}: {n}" for n in file_notes]
    return turns, sessions, notes


def _nothing_to_replay(report: TimingReport) -> str:
    if report.turns and all(t.pauses is None for t in report.turns):
        return (
            "its turn records hold no pauses (field 'pauses'): it was written by a version of "
            "pipecat-speculative that did not record them yet; the tuner needs them, so record "
            "a new file with this version"
        )
    if not report.turns:
        return "no turn records to replay (only session records)"
    return "no turn with a VAD stop to replay (an STT that ends turns itself, without VAD)"


def replay_turns(
    report: TimingReport, *, cut_in_secs: float | None = None
) -> tuple[list[ReplayTurn], list[str]]:
    """The replayable turns of one report, with notes on what was skipped or estimated.

    Args:
        report: The records.
        cut_in_secs: A turn whose user spoke again less than this after its commit was cut in
            on; it is merged with the next turn. The planner's default if None.
    """
    cut_in = PatienceParams().cut_in_secs if cut_in_secs is None else cut_in_secs
    notes: list[str] = []
    records = [t for t in report.turns if t.pauses is not None]
    if len(records) < len(report.turns):
        notes.append(
            f"{len(report.turns) - len(records)} turn records without pauses (written by an "
            "older version) skipped"
        )
    no_pause = [t for t in records if not t.pauses]
    if no_pause:
        notes.append(f"{len(no_pause)} turns without a VAD stop skipped")
    records = [t for t in records if t.pauses]

    fallback_readiness = _median([r for t in records if (r := _readiness(t)) is not None])
    fallback_tokens = _median([k for t in records if (k := _tokens(t)) is not None])
    estimated = 0
    turns: list[ReplayTurn] = []
    merged = 0
    group: list[TurnRecord] = []
    for n, record in enumerate(records):
        group.append(record)
        following = records[n + 1] if n + 1 < len(records) else None
        if (
            following is not None
            and following.session_id == record.session_id
            and following.turn == record.turn + 1
            and record.speech_after_commit_ms is not None
            and record.speech_after_commit_ms < cut_in * 1000
            and record.pauses
            and not record.pauses[-1].resumed
        ):
            merged += 1
            continue  # cut in on: the user went on in the next record
        readiness = _readiness(group[-1])
        if readiness is None:
            estimated += 1
            readiness = fallback_readiness
        if readiness is None:
            readiness = SpeculativeTurnParams().initial_readiness_secs
        tokens = _tokens(group[-1])
        turns.append(
            ReplayTurn(
                session_id=record.session_id,
                turns=tuple(t.turn for t in group),
                pauses=_merged_pauses(group, readiness),
                readiness_secs=readiness,
                tokens_per_speculation=tokens if tokens is not None else fallback_tokens,
                first_speech_secs=_secs(group[0].first_speech_ms),
                first_words_secs=_secs(group[0].first_words_ms),
            )
        )
        group = []
    if merged:
        notes.append(f"{merged} recorded cut-ins replayed as one turn with the turn after them")
    if estimated:
        source = (
            "the file's median"
            if fallback_readiness is not None
            else f"the planner's prior {SpeculativeTurnParams().initial_readiness_secs} s"
        )
        notes.append(f"{estimated} turns without a measured answer readiness use {source}")
    if fallback_tokens is None:
        notes.append("no token usage recorded: wasted tokens are n/a (withdrawals still counted)")
    notes.append(_recorded_outcomes(records))
    return turns, notes


def _recorded_outcomes(records: Sequence[TurnRecord]) -> str:
    """What the recorded turns did, for comparison with the replay (which leaves some out)."""
    specs = [s for t in records for s in t.speculations]
    adopted = sum(1 for s in specs if s.outcome == "adopted")
    reasons: dict[str, int] = {}
    for s in specs:
        if s.outcome == "withdrawn":
            reasons[s.reason or "unknown"] = reasons.get(s.reason or "unknown", 0) + 1
    counted = sum(1 for s in specs if s.outcome == "withdrawn" and s.counts_toward_cancel_rate)
    rate = f"{counted / (counted + adopted):.0%}" if counted + adopted else "n/a"
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or "none"
    return (
        f"recorded: {len(specs)} speculations, cancel rate {rate}, withdrawn: {by_reason}; "
        "tool calls, failures and mismatches are not replayed"
    )


def _merged_pauses(group: list[TurnRecord], readiness: float) -> tuple[ReplayPause, ...]:
    """The pauses of one record, or of a recorded cut-in's records, each with its readiness."""
    pauses: list[ReplayPause] = []
    for n, record in enumerate(group):
        assert record.pauses is not None
        own = _readiness(record) if n + 1 < len(group) else None
        entries = [replace(_pause(p), readiness_secs=own or readiness) for p in record.pauses]
        if n + 1 < len(group):
            last = entries[-1]
            gap = (record.speech_after_commit_ms or 0.0) / 1000
            entries[-1] = replace(last, silence_secs=last.silence_secs + gap, resumed=True)
        pauses += entries
    return tuple(pauses)


def _pause(entry: PauseEntry) -> ReplayPause:
    final = dict(
        final_secs=_secs(entry.final_ms),
        final_matched=entry.final_matched,
    )
    if not entry.resumed:
        return ReplayPause(silence_secs=entry.silence_ms / 1000, resumed=False, **final)
    return ReplayPause(
        silence_secs=entry.silence_ms / 1000,
        resumed=True,
        speech_secs=entry.speech_ms / 1000 if entry.speech_ms is not None else UNKNOWN_SPEECH_SECS,
        words_secs=_secs(entry.words_ms),
        **final,
    )


def _readiness(record: TurnRecord) -> float | None:
    """Inference start → first sentence of this turn's answer, seconds, if measured.

    The strategy's own measure (a speculation's ``ready_ms``, the adopted one first), else the
    answer's own inference when the gate did not hold it: LLM request → first token → first
    sentence.
    """
    adopted = [s for s in record.speculations if s.outcome == "adopted" and s.ready_ms]
    ready = adopted or [s for s in record.speculations if s.ready_ms]
    if ready:
        return (ready[-1].ready_ms or 0.0) / 1000
    if not record.speculative:
        first_token, sentence = record.stage("llm_first_token"), record.stage("first_sentence")
        if first_token is not None and sentence is not None:
            return (first_token + sentence) / 1000
    return None


def _tokens(record: TurnRecord) -> float | None:
    """Prompt + completion tokens of one speculation (or of the answer) in this turn."""
    reported = [
        (s.prompt_tokens or 0) + (s.completion_tokens or 0)
        for s in record.speculations
        if s.prompt_tokens is not None
    ]
    if reported:
        return statistics.fmean(reported)
    if record.prompt_tokens is not None:
        return float(record.prompt_tokens + (record.completion_tokens or 0))
    return None


def _secs(ms: float | None) -> float | None:
    return ms / 1000 if ms is not None else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------- the replay


class _Replay:
    """Executes a planner's actions on a virtual clock, for the turns of one session.

    It decides nothing: the planner does. It keeps the timers the planner arms (a re-armed or
    cancelled timer never fires), plays the recorded script, fires the commit rule ``floor``
    after each VAD stop, reports a speculation's answer ready ``readiness`` after its start, and
    finalizes the commits the planner releases, the way the strategy shell does.
    """

    def __init__(self, params: SpeculativeTurnParams, floor_secs: float, result: ReplayResult):
        self.planner = SpeculationPlanner(params)
        self.floor = floor_secs
        self.result = result
        self._queue: list[tuple[float, int, int, str, object]] = []
        self._seq = itertools.count()
        self._generation: dict[str, int] = {}
        self._speaking = False
        self._turn_open = False
        self._words = itertools.count()
        self._readiness = 0.0
        self._committed: tuple[float, SpeculationRecord | None] | None = None
        # The commit rule's floor passed with no transcript yet: it fires with the first one.
        self._rule_waiting = False

    def _at(self, when: float, kind: str, payload: object = None, *, priority: int = 1):
        # At equal times the user's events (priority 0) come before timers and reports.
        heapq.heappush(self._queue, (when, priority, next(self._seq), kind, payload))

    def _arm(self, name: str, when: float):
        self._generation[name] = self._generation.get(name, 0) + 1
        self._at(when, "timer", (name, self._generation[name]))

    def _cancel(self, name: str):
        self._generation[name] = self._generation.get(name, 0) + 1

    def _execute(self, now: float, actions: list[PlannerAction]):
        for action in actions:
            if isinstance(action, StartSpeculation):
                # A speculation-aware LLM reports that it started, then the ready stage.
                self._execute(
                    now, self.planner.speculation_progress(now, SpeculationStage.STARTED, "")
                )
                self._at(now + self._readiness, "ready", action.record)
            elif isinstance(action, ArmTimer):
                self._arm(action.kind.value, now + action.delay_secs)
            elif isinstance(action, CancelTimer):
                self._cancel(action.kind.value)
            elif isinstance(action, FinalizeCommit):
                self._finalize(now)

    def _finalize(self, now: float):
        """Commit as the strategy shell does: adopt or withdraw, commit, end the turn."""
        if self._speaking:
            return  # the shell drops a commit while the user speaks
        planner = self.planner
        adopt = planner.commit_adopts()
        adopted = planner.speculation if adopt else None
        if not adopt:
            self._execute(now, planner.withdraw_mismatch(now))
        self._execute(now, planner.commit(now, adopt=adopt))
        self._execute(now, planner.turn_stopped(now))
        self._cancel("commit_rule")
        self._rule_waiting = False
        self._turn_open = False
        self._committed = (now, adopted)

    def _start_turn(self, now: float):
        self._execute(now, self.planner.turn_started(now))
        self._turn_open = True

    def _word(self) -> str:
        return f"w{next(self._words)}"

    def run_turn(self, start: float, turn: ReplayTurn) -> float:
        """Replay one turn from ``start``; returns when it was committed."""
        self._readiness = turn.readiness_secs
        self._start_turn(start)
        self._at(start, "vad_start", priority=0)
        words_at: float | None = start + (turn.first_words_secs or 0.0)
        stop = start + (turn.first_speech_secs or UNKNOWN_SPEECH_SECS)
        resumptions: list[float] = []
        for pause in turn.pauses:
            readiness = pause.readiness_secs or turn.readiness_secs
            # The words of the speech before this pause: an interim while speaking when its
            # final came in the pause (then the final, the same words or not), else the final.
            word = self._word()
            if pause.final_secs is None:
                if words_at is not None:
                    self._at(words_at, "final", word, priority=0)
            else:
                if words_at is not None and pause.final_matched is not None:
                    self._at(words_at, "interim", word, priority=0)
                final = word if pause.final_matched is not False else f"{word} more"
                self._at(stop + pause.final_secs, "final", final, priority=0)
            self._at(stop, "vad_stop", readiness, priority=0)
            if not pause.resumed:
                break
            resume = stop + pause.silence_secs
            resumptions.append(resume)
            self._at(resume, "vad_start", priority=0)
            words_at = resume + pause.words_secs if pause.words_secs is not None else None
            stop = resume + pause.speech_secs
        final_stop = stop
        while self._queue:
            now, _, _, kind, payload = heapq.heappop(self._queue)
            if now > final_stop + _SETTLE_SECS:
                break
            self._event(now, kind, payload)
            if self._committed is None:
                continue
            committed_at, adopted = self._committed
            self._committed = None
            if any(r > committed_at for r in resumptions):
                # A commit in a pause the user went on after: what they say next starts a new
                # turn, as it would live.
                self.result.cut_ins += 1
                continue
            self._queue.clear()
            self._account_answer(turn, committed_at, final_stop, adopted)
            return committed_at
        raise RuntimeError("a replayed turn was never committed")  # pragma: no cover

    def _event(self, now: float, kind: str, payload: object):
        planner = self.planner
        if kind == "vad_stop":
            if isinstance(payload, float):
                self._readiness = payload
            self._speaking = False
            self._execute(now, planner.vad_stopped(now))
            self._arm("commit_rule", now + self.floor)
        elif kind == "vad_start":
            if not self._turn_open:
                self._start_turn(now)
            self._speaking = True
            self._cancel("commit_rule")
            self._rule_waiting = False
            self._execute(now, planner.vad_started(now))
        elif kind == "interim":
            self._execute(now, planner.interim_transcript(now, str(payload)))
        elif kind == "final":
            self._execute(now, planner.final_transcript(now, str(payload)))
            if self._rule_waiting and not self._speaking:
                self._rule_waiting = False
                self._execute(now, planner.commit_requested(now))
        elif kind == "ready":
            if isinstance(payload, SpeculationRecord) and planner.speculation is payload:
                stage = planner.params.ready_stage
                self._execute(now, planner.speculation_progress(now, stage, payload.text))
        elif kind == "timer":
            name, generation = payload  # type: ignore[misc]
            if self._generation.get(name) != generation:
                return  # cancelled or re-armed
            if name != "commit_rule":
                self._execute(now, planner.timer_fired(now, TimerKind(name)))
            elif not self._speaking:
                # Pipecat's speech timeout needs a transcript before it ends a turn.
                if planner.text.strip():
                    self._execute(now, planner.commit_requested(now))
                else:
                    self._rule_waiting = True

    def _account_answer(
        self,
        turn: ReplayTurn,
        committed_at: float,
        final_stop: float,
        adopted: SpeculationRecord | None,
    ):
        """The answer's first sentence, from the turn's last VAD stop, and the saving on stock."""
        if adopted is not None:
            answer_at = max(committed_at, adopted.started_at + turn.readiness_secs)
        else:
            answer_at = committed_at + turn.readiness_secs
        latency = answer_at - final_stop
        self.result.turns += 1
        self.result.latencies_secs.append(latency)
        self.result.saved_secs.append(STOCK_FLOOR_SECS + turn.readiness_secs - latency)


def replay(
    turns: Sequence[ReplayTurn],
    setting: TuneSetting | None,
    *,
    base: SpeculativeTurnParams | None = None,
) -> ReplayResult:
    """Replay the turns under one setting (None: stock Pipecat, no speculation).

    One planner per recorded session, in file order, as the sessions ran. The planner's own
    logs (debounce changes, cut-ins) are muted: a grid would repeat them for every setting.
    """
    logger.disable("pipecat_speculative.turns")
    try:
        return _replay(turns, setting, base)
    finally:
        logger.enable("pipecat_speculative.turns")


def _replay(
    turns: Sequence[ReplayTurn], setting: TuneSetting | None, base: SpeculativeTurnParams | None
) -> ReplayResult:
    result = ReplayResult(setting=setting)
    if setting is None:
        params = replace(base or SpeculativeTurnParams(), own_speculation=False)
        floor = STOCK_FLOOR_SECS
    else:
        params = setting.params(base)
        floor = setting.floor_secs
    replays: dict[str, _Replay] = {}
    clock: dict[str, float] = {}
    for turn in turns:
        session = replays.get(turn.session_id)
        if session is None:
            session = replays[turn.session_id] = _Replay(params, floor, result)
            clock[turn.session_id] = 0.0
        planner = session.planner
        before = _withdrawals(planner)
        ended = session.run_turn(clock[turn.session_id], turn)
        clock[turn.session_id] = ended + _TURN_GAP_SECS
        wasted = _withdrawals(planner) - before
        if turn.tokens_per_speculation is None:
            result.tokens_unknown += wasted
        else:
            result.wasted_tokens += wasted * turn.tokens_per_speculation
    for session in replays.values():
        planner = session.planner
        result.started += planner.started
        result.adopted += planner.adopted
        result.withdrawn += _withdrawals(planner)
        result.counted_withdrawn += sum(
            n for r, n in planner.withdrawn.items() if r.counts_toward_cancel_rate
        )
        result.planners.append(planner)
    return result


def _withdrawals(planner: SpeculationPlanner) -> int:
    return sum(planner.withdrawn.values())


# ---------------------------------------------------------------------- the grid


def _current_setting(sessions: Sequence[SessionSummary]) -> tuple[TuneSetting, str]:
    """The setting in force when the file was recorded, and where that came from."""
    defaults = TuneSetting(
        delay_secs=DebounceParams().initial_secs,
        floor_secs=STOCK_FLOOR_SECS,
        backoff=SpeculativeTurnParams().resume_backoff,
    )
    recorded = [s for s in sessions if s.debounce_initial_secs is not None]
    if not recorded:
        return defaults, "the defaults (the file does not record the strategy's settings)"
    s = recorded[0]
    setting = TuneSetting(
        delay_secs=max(s.debounce_initial_secs or 0.0, s.debounce_min_secs or 0.0),
        floor_secs=s.commit_floor_secs if s.commit_floor_secs is not None else defaults.floor_secs,
        backoff=s.resume_backoff if s.resume_backoff is not None else defaults.backoff,
    )
    return setting, "the file's session record"


def recommend(
    results: Sequence[ReplayResult], current: ReplayResult, *, band_high: float
) -> tuple[TuneSetting, str]:
    """The recommended setting and the rule that picked it.

    The rule: the lowest mean latency among the settings with no more cut-ins than the current
    one and a cancellation rate at most the debounce band's upper edge (below the band is only
    cheaper: the replay measures the latency a low rate could cost directly). Ties go to fewer
    wasted tokens (withdrawals when tokens are unknown), then to the current setting.
    """
    rule = (
        f"lowest mean latency with cut-ins <= current ({current.cut_ins}) and cancel rate <= "
        f"{band_high:.0%} (the debounce band's upper edge); ties: less waste, then current"
    )
    assert current.setting is not None
    eligible = [
        r
        for r in results
        if r.cut_ins <= current.cut_ins and (r.cancel_rate is None or r.cancel_rate <= band_high)
    ]
    if not eligible:
        return current.setting, rule + "; no setting qualifies, so the current one stays"

    def key(r: ReplayResult) -> tuple[float, float, bool]:
        waste = r.wasted_tokens if r.tokens_unknown == 0 else float(r.withdrawn)
        return (round(r.mean_latency_secs, 3), waste, r.setting != current.setting)

    best = min(eligible, key=key)
    assert best.setting is not None
    return best.setting, rule


def tune(
    turns: Sequence[ReplayTurn],
    *,
    sessions: Sequence[SessionSummary] = (),
    delays: Iterable[float] = DEFAULT_DELAYS,
    floors: Iterable[float] = DEFAULT_FLOORS,
    backoffs: Iterable[float] = DEFAULT_BACKOFFS,
    base: SpeculativeTurnParams | None = None,
    notes: Sequence[str] = (),
) -> TuneResult:
    """Replay the turns under every setting of the grid (plus the current one) and stock."""
    base = base or SpeculativeTurnParams()
    current, source = _current_setting(sessions)
    grid = [
        TuneSetting(d, f, b)
        for d in sorted(set(delays))
        for f in sorted(set(floors))
        for b in sorted(set(backoffs))
    ]
    if current not in grid:
        grid.append(current)
    results = [replay(turns, setting, base=base) for setting in grid]
    by_setting = {r.setting: r for r in results}
    recommended, rule = recommend(results, by_setting[current], band_high=base.debounce.target_high)
    return TuneResult(
        stock=replay(turns, None, base=base),
        results=results,
        current=current,
        current_source=source,
        recommended=recommended,
        rule=rule,
        turns=list(turns),
        notes=list(notes),
    )


# ---------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _tokens_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def print_tune(result: TuneResult, console: Console | None = None):
    """Print one row per setting, stock first; mark the current and the recommended one."""
    console = console or Console()
    sessions = len({t.session_id for t in result.turns})
    recorded = sum(len(t.turns) for t in result.turns)
    table = Table(
        title=(
            f"What-if replay: {len(result.turns)} turns ({recorded} records, {sessions} "
            "sessions); ms; latency = last VAD stop → answer's first sentence"
        )
    )
    for name, justify in (
        ("delay", "right"),
        ("floor", "right"),
        ("backoff", "right"),
        ("latency", "right"),
        ("saved", "right"),
        ("cancel", "right"),
        ("spec/turn", "right"),
        ("waste tok/turn", "right"),
        ("cut-ins", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    stock = result.stock
    table.add_row(
        "-",
        f"{STOCK_FLOOR_SECS * 1000:.0f}",
        "-",
        f"{stock.mean_latency_secs * 1000:,.0f}",
        "0",
        "-",
        "0",
        "0",
        str(stock.cut_ins),
        "stock",
        style="dim",
    )
    for r in result.results:
        s = r.setting
        assert s is not None
        marks = []
        if s == result.current:
            marks.append("current")
        if s == result.recommended:
            marks.append("[bold green]recommended[/]")
        table.add_row(
            f"{s.delay_secs * 1000:.0f}",
            f"{s.floor_secs * 1000:.0f}",
            f"{s.backoff:g}",
            f"{r.mean_latency_secs * 1000:,.0f}",
            f"{r.mean_saved_secs * 1000:,.0f}",
            _pct(r.cancel_rate),
            f"{r.started / r.turns:.2f}" if r.turns else "-",
            _tokens_text(r.wasted_tokens_per_turn),
            str(r.cut_ins),
            ", ".join(marks),
            style="bold" if marks else None,
        )
    console.print(table)
    current, recommended = result.result(result.current), result.result(result.recommended)
    console.print(f"current: {result.current.label} (from {result.current_source})")
    console.print(f"recommended: {result.recommended.label}; rule: {result.rule}")
    if result.recommended != result.current:
        console.print(
            f"  latency {current.mean_latency_secs * 1000:,.0f} → "
            f"{recommended.mean_latency_secs * 1000:,.0f} ms, cancel "
            f"{_pct(current.cancel_rate)} → {_pct(recommended.cancel_rate)}, wasted tokens/turn "
            f"{_tokens_text(current.wasted_tokens_per_turn)} → "
            f"{_tokens_text(recommended.wasted_tokens_per_turn)}, cut-ins {current.cut_ins} → "
            f"{recommended.cut_ins}"
        )
    s = result.recommended
    console.print(
        "  in code: speculative_turn_strategies(user_speech_timeout="
        f"{s.floor_secs:g}, params=SpeculativeTurnParams(resume_backoff={s.backoff:g}, "
        f"debounce=DebounceParams(initial_secs={s.delay_secs:g}, min_secs={s.delay_secs:g})))"
    )
    fewest = min(r.cut_ins for r in result.results)
    if fewest < recommended.cut_ins:
        safest = min(
            (r for r in result.results if r.cut_ins == fewest),
            key=lambda r: r.mean_latency_secs,
        )
        assert safest.setting is not None
        console.print(
            f"fewest cut-ins ({fewest}): {safest.setting.label}, latency "
            f"{safest.mean_latency_secs * 1000:,.0f} ms, cancel {_pct(safest.cancel_rate)}"
        )
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")


def render_tune_png(result: TuneResult, path: str | Path) -> Path:
    """Write latency saved against waste, one labelled point per setting (matplotlib, headless).

    Returns:
        The path written.
    """
    plt = headless_pyplot()
    path = Path(path)
    tokens = all(r.wasted_tokens_per_turn is not None for r in result.results)

    def waste(r: ReplayResult) -> float:
        if tokens:
            return r.wasted_tokens_per_turn or 0.0
        return r.withdrawn / r.turns if r.turns else 0.0

    fig, ax = plt.subplots(figsize=(11, 7))
    xs = [waste(r) for r in result.results]
    ys = [r.mean_saved_secs * 1000 for r in result.results]
    colours = [r.cut_ins for r in result.results]
    points = ax.scatter(xs, ys, c=colours, cmap="viridis_r", s=36, zorder=2)
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(points, ax=ax, label="cut-ins")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    # Settings with the same outcome share a point and one label: "d0.3 f0.3,0.6 b1".
    groups: dict[tuple[float, float], list[TuneSetting]] = {}
    for r, x, y in zip(result.results, xs, ys, strict=True):
        assert r.setting is not None
        groups.setdefault((round(x, 1), round(y, 1)), []).append(r.setting)
    for (x, y), settings in groups.items():

        def values(name: str, group: list[TuneSetting] = settings) -> str:
            return ",".join(f"{v:g}" for v in sorted({getattr(g, name) for g in group}))

        label = f"d{values('delay_secs')} f{values('floor_secs')} b{values('backoff')}"
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for setting, colour, name in (
        (result.current, "#1f77b4", "current"),
        (result.recommended, "#d62728", "recommended"),
    ):
        r = result.result(setting)
        ax.scatter(
            [waste(r)],
            [r.mean_saved_secs * 1000],
            s=220,
            facecolors="none",
            edgecolors=colour,
            linewidths=2,
            label=f"{name}: {setting.label}",
            zorder=3,
        )
    ax.scatter([0], [0], marker="x", color="black", label="stock (no speculation)", zorder=3)
    ax.set_xlabel("wasted tokens per turn" if tokens else "withdrawn speculations per turn")
    ax.set_ylabel("mean latency saved vs stock (ms)")
    ax.set_title("What-if replay: latency saved against waste (d = delay, f = floor, b = backoff)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def write_profile(
    result: TuneResult, path: str | Path, *, base: SpeculativeTurnParams | None = None
):
    """Write the recommended setting as a turn-taking profile (JSON), loadable by ``profiles``.

    The profile is what the planner ends the last replayed session with under the recommended
    setting: its speculation delay (at least the recommended one), the pauses and outcomes it
    learned from, the readiness and the commit patience (at least the recommended floor). A
    profile carries no commit floor nor backoff: those are code (see :func:`print_tune`).

    Returns:
        The profile written.
    """
    from pipecat_speculative.profiles import TurnTakingProfile, snapshot_profile

    replayed = replay(result.turns, result.recommended, base=base)
    profile = snapshot_profile(replayed.planners[-1])
    text = profile.to_json()
    TurnTakingProfile.from_json(text)  # what a store would accept
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return profile


def run_tune(
    paths: Sequence[str | Path],
    *,
    png: str | Path | None = None,
    profile: str | Path | None = None,
    delays: Iterable[float] = DEFAULT_DELAYS,
    floors: Iterable[float] = DEFAULT_FLOORS,
    backoffs: Iterable[float] = DEFAULT_BACKOFFS,
    console: Console | None = None,
) -> TuneResult:
    """Load the files, replay the grid, print it; write the PNG and the profile if asked."""
    console = console or Console()
    turns, sessions, notes = load_replay_turns(paths)
    result = tune(
        turns, sessions=sessions, delays=delays, floors=floors, backoffs=backoffs, notes=notes
    )
    print_tune(result, console)
    if png is not None:
        console.print(f"latency against waste written to {render_tune_png(result, png)}")
    if profile is not None:
        written = write_profile(result, profile)
        console.print(
            f"profile written to {profile} (speculation delay {written.speculation_delay_secs} s, "
            f"commit patience {written.commit_patience_secs} s, {len(written.pauses)} pauses)"
        )
    return result

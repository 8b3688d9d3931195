"""Run a bot on a scripted conversation with no network: stand-ins, scenario microphone, recorder.

One session is one built bot (:func:`~pipecat_speculative.pipeline_builder.build_bot_pipeline`)
hearing one rendered scenario in real time through a
:class:`~pipecat_speculative.transports.ScenarioAudioInput`, answering through the real
Pipecat services pointed at a :class:`~pipecat_speculative.standins.StandinStack`, and playing
into a
:class:`~pipecat_speculative.transports.PacedOutputTransport`. The turn timing observer is the
only stopwatch; the session returns its records next to the scenario's ground truth
(:class:`~pipecat_speculative.scenarios.player.TurnPlayback`), which is what the demo prints and
the bench scores.

Several sessions can share one stack and run concurrently: each registers the scenario's STT
script under its own Deepgram tag, so each connection transcribes its own user.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import EndFrame
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord
from pipecat_speculative.pipeline_builder import (
    BotPipelineConfig,
    SystemKind,
    build_bot_pipeline,
)
from pipecat_speculative.profiles import TurnTakingProfile, snapshot_profile
from pipecat_speculative.scenarios.player import SAMPLE_RATE, RenderedScenario, TurnPlayback
from pipecat_speculative.standins.standin_stack import StandinStack
from pipecat_speculative.transports.paced_output_transport import PacedOutputTransport
from pipecat_speculative.transports.scenario_audio_input import ScenarioAudioInput
from pipecat_speculative.turns.adaptive_debounce import DebounceState

__all__ = [
    "RAG_COUNTERS",
    "SessionResult",
    "quiet_standin_server_errors",
    "rag_counters",
    "run_scenario_session",
]

RAG_COUNTERS: tuple[str, ...] = (
    "retrievals_started",
    "prefetches_started",
    "prefetch_hits",
    "retrievals_joined",
    "retrievals_reused",
    "contexts_dropped",
    "timeouts",
    "errors",
)
"""What a session reports about its retrieval, whatever processor ran it."""

TurnCallback = Callable[[TurnRecord], Awaitable[None] | None]


def quiet_standin_server_errors(log_path: Path | None = None):
    """Keep the stand-ins' aiohttp "Connection lost" tracebacks off the terminal.

    aiohttp's server logs a traceback whenever a client drops a request it no longer wants; a
    withdrawn speculation closes its OpenAI stream exactly like that, so in a demo or bench run
    these are expected. They go to ``log_path`` when given, else nowhere.

    Args:
        log_path: A file for them; None discards them.
    """
    handler: logging.Handler = (
        logging.FileHandler(log_path, mode="w") if log_path else logging.NullHandler()
    )
    server_log = logging.getLogger("aiohttp.server")
    server_log.handlers[:] = [handler]
    server_log.propagate = False


def rag_counters(processor: Any) -> dict[str, int]:
    """The counters of a RAG processor under the names of :data:`RAG_COUNTERS`.

    The serial baseline counts only what it can do (it never joins, reuses or drops: each
    context retrieves for itself), so its other counters are 0, which is the comparison.
    """
    counters = {name: int(getattr(processor, name, 0) or 0) for name in RAG_COUNTERS}
    if hasattr(processor, "retrievals") and not hasattr(processor, "retrievals_started"):
        counters["retrievals_started"] = int(processor.retrievals)
    return counters


@dataclass
class SessionResult:
    """What one session measured, next to what really happened.

    Parameters:
        system: The turn handling that ran.
        scenario_name: The scenario played.
        session_id: The observer's session id.
        records: Turn records, in order (the observer's, unmodified).
        summary: The observer's session summary.
        playbacks: Ground truth of every user turn played.
        wall_secs: How long the session ran, seconds.
        audio: The conversation (user and bot mixed, 16 kHz mono PCM16), when recorded.
        warm_available: Whether warm services were used.
        debounce: The speculative strategy's debounce at the end (``speculative`` only).
        rag_counters: The RAG processor's counters at the end (``retrievals_started``,
            ``retrievals_joined``, ...; see :func:`rag_counters`), empty without RAG.
        profile: The user's turn-taking profile at the end, as a bot would store it
            (:func:`~pipecat_speculative.profiles.snapshot_profile`, carrying on the config's
            profile); the plugin's systems only.
    """

    system: SystemKind
    scenario_name: str
    session_id: str
    records: list[TurnRecord] = field(default_factory=list)
    summary: SessionSummary | None = None
    playbacks: list[TurnPlayback] = field(default_factory=list)
    wall_secs: float = 0.0
    audio: bytes | None = None
    warm_available: bool = False
    debounce: DebounceState | None = None
    rag_counters: dict[str, int] = field(default_factory=dict)
    profile: TurnTakingProfile | None = None

    def write_wav(self, path: str | Path) -> Path | None:
        """Write the recorded conversation as a WAV file (None when nothing was recorded)."""
        if not self.audio:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(self.audio)
        return path


async def run_scenario_session(
    rendered: RenderedScenario,
    stack: StandinStack,
    config: BotPipelineConfig,
    *,
    playback_speed: float = 1.0,
    record_audio: bool = False,
    bot_timeout_secs: float = 20.0,
    lead_in_secs: float = 0.5,
    tail_secs: float = 0.5,
    on_turn: TurnCallback | None = None,
    on_user_turn: Callable[[TurnPlayback], Any] | None = None,
) -> SessionResult:
    """Play a rendered scenario to a freshly built bot, in real time, and collect the timings.

    Args:
        rendered: The scenario, rendered (speech, STT script, ground truth).
        stack: Started stand-ins.
        config: The bot to build; its endpoints are replaced by the stack's.
        playback_speed: Speed of the bot's playback (see :class:`PacedOutputTransport`).
        record_audio: Record the conversation (both sides) into :attr:`SessionResult.audio`.
        bot_timeout_secs: Longest the user waits for an answer before going on.
        lead_in_secs: Silence before the first turn.
        tail_secs: Silence after the last answer, before the pipeline ends.
        on_turn: Called with each turn record as the observer closes it.
        on_user_turn: Called with each user turn's playback when its speech starts.

    Returns:
        The session's records, summary and ground truth.
    """
    tag = config.deepgram_tag or uuid.uuid4().hex[:10]
    stack.deepgram.set_script(rendered.script, tag=tag)
    config = replace(config, endpoints=stack.endpoints, deepgram_tag=tag)
    result = SessionResult(
        system=SystemKind(config.system),
        scenario_name=rendered.scenario.name,
        session_id=config.session_id or tag,
    )
    if config.session_id is None:
        config = replace(config, session_id=result.session_id)

    user = ScenarioAudioInput()
    output = PacedOutputTransport(
        TransportParams(audio_out_sample_rate=SAMPLE_RATE), speed=playback_speed
    )
    recorder: AudioBufferProcessor | None = None
    recorded: list[bytes] = []
    if record_audio:
        recorder = AudioBufferProcessor(
            sample_rate=SAMPLE_RATE, num_channels=1, auto_start_recording=True
        )

        @recorder.event_handler("on_audio_data")
        async def _on_audio_data(_recorder, audio: bytes, sample_rate: int, num_channels: int):
            recorded.append(audio)

    bot = build_bot_pipeline(
        config,
        transport_input=user,
        transport_output=output,
        after_output=[recorder] if recorder else [],
    )
    result.warm_available = bot.warm_available

    @bot.observer.event_handler("on_turn_completed")
    async def _on_turn_completed(_observer, record: TurnRecord):
        result.records.append(record)
        if on_turn is not None:
            maybe = on_turn(record)
            if asyncio.iscoroutine(maybe):
                await maybe

    if on_user_turn is not None:

        @user.event_handler("on_turn_started")
        async def _on_turn_started(_input, playback: TurnPlayback):
            on_user_turn(playback)

    worker = bot.create_worker()
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    started = time.monotonic()
    run = asyncio.create_task(runner.run(), name=f"session-{result.session_id}")
    try:
        result.playbacks = await user.play_scenario(
            rendered, lead_in_secs=lead_in_secs, bot_timeout_secs=bot_timeout_secs
        )
        if tail_secs > 0:
            await user.send_silence(tail_secs)
    finally:
        await worker.queue_frame(EndFrame())
        try:
            await asyncio.wait_for(asyncio.shield(run), timeout=15.0)
        except TimeoutError:
            logger.warning(f"session {result.session_id}: pipeline did not end in 15 s; cancelling")
            await worker.cancel()
            await run
        await bot.close()
    result.wall_secs = time.monotonic() - started
    result.summary = bot.observer.summary()
    if bot.strategy is not None:
        result.debounce = bot.strategy.debounce.state
        result.profile = snapshot_profile(bot.strategy, previous=config.profile)
    if bot.rag is not None:
        result.rag_counters = rag_counters(bot.rag)
    if recorded:
        result.audio = b"".join(recorded)
    return result

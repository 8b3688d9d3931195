"""Glue between Pipecat's development runner and the ready-made bot (Daily rooms, local WebRTC).

``bots/speculative_bot.py`` is a thin file in Pipecat's runner conventions; the code it calls lives
here so it is importable, typed and unit-tested (the Daily side with mocks: rooms cannot be joined
without the network).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from pipecat_speculative.bot.bot_session import build_bot_session, greeting
from pipecat_speculative.bot.bot_settings import BotSettings

__all__ = [
    "OFFLINE_CLIENT_PAGE",
    "add_offline_client_route",
    "daily_params",
    "run_bot",
    "transport_params",
    "webrtc_params",
]

OFFLINE_CLIENT_PAGE = Path(__file__).resolve().parent / "static" / "offline_client.html"
"""A self-contained browser client for ``-t webrtc`` (no CDN), served at ``/offline``."""


def add_offline_client_route(app: Any, path: str = "/offline") -> None:
    """Serve :data:`OFFLINE_CLIENT_PAGE` from the runner's FastAPI ``app``.

    Why: the runner's prebuilt page (``/client``) fetches Daily's call-machine bundle from
    c.daily.co to manage the microphone even for SmallWebRTC, so with no network it never
    connects. This page talks to the same ``/api/offer`` with the browser's own WebRTC.

    Args:
        app: ``pipecat.runner.run.app`` (routes must be added before ``main()``).
        path: Where the page is served.
    """
    from fastapi.responses import HTMLResponse

    html = OFFLINE_CLIENT_PAGE.read_text(encoding="utf-8")

    @app.get(path, include_in_schema=False)
    async def _offline_client() -> HTMLResponse:
        return HTMLResponse(html)


def daily_params() -> Any:
    """Daily room parameters: audio both ways, no video.

    VAD is not set on the transport: in Pipecat 1.14 it belongs to the user aggregator, where the
    speculative turn strategy reads it.
    """
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(audio_in_enabled=True, audio_out_enabled=True)


def webrtc_params() -> Any:
    """Local SmallWebRTC parameters (the runner's prebuilt page at http://localhost:7860/client)."""
    from pipecat.transports.base_transport import TransportParams

    return TransportParams(audio_in_enabled=True, audio_out_enabled=True)


def transport_params() -> dict[str, Callable[[], Any]]:
    """The factories ``pipecat.runner.utils.create_transport`` picks from, by transport name."""
    return {"daily": daily_params, "webrtc": webrtc_params}


async def run_bot(
    runner_args: Any,
    settings: BotSettings,
    *,
    create_transport: Callable[..., Any] | None = None,
) -> None:
    """Run one session: create the transport, build the pipeline, greet, run until hang-up.

    Args:
        runner_args: The runner's ``RunnerArguments`` (``DailyRunnerArguments``,
            ``SmallWebRTCRunnerArguments``, ...).
        settings: What to run.
        create_transport: Pipecat's ``create_transport`` unless given (tests pass a fake).
    """
    from pipecat.frames.frames import TTSSpeakFrame
    from pipecat.workers.runner import WorkerRunner

    if create_transport is None:
        from pipecat.runner.utils import create_transport as pipecat_create_transport

        create_transport = pipecat_create_transport
    transport = await create_transport(runner_args, transport_params())
    session = await build_bot_session(
        settings,
        transport_input=transport.input(),
        transport_output=transport.output(),
        session_id=getattr(runner_args, "session_id", None),
    )
    worker = session.create_worker(
        idle_timeout_secs=getattr(runner_args, "pipeline_idle_timeout_secs", None)
    )

    @transport.event_handler("on_client_connected")
    async def _on_client_connected(_transport: Any, client: Any) -> None:
        logger.info(f"client connected ({settings.describe()})")
        await worker.queue_frames([TTSSpeakFrame(greeting(settings))])

    @transport.event_handler("on_client_disconnected")
    async def _on_client_disconnected(_transport: Any, client: Any) -> None:
        logger.info("client disconnected: ending the session")
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=getattr(runner_args, "handle_sigint", False))
    await runner.add_workers(worker)
    try:
        await runner.run()
    finally:
        await session.close()

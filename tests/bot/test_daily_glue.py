"""The Daily (and WebRTC) glue with mocks: Daily rooms cannot be joined without the network."""

from __future__ import annotations

import asyncio
import os

import pytest
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_speculative.bot import (
    OFFLINE_GREETING,
    BotSettings,
    bot_runner,
    run_bot,
    transport_params,
)

pytest.importorskip("daily", reason="daily-python (the daily extra) is not installed")

from pipecat.runner.types import DailyRunnerArguments  # noqa: E402
from pipecat.transports.daily.transport import DailyParams  # noqa: E402


class Recorder(FrameProcessor):
    def __init__(self):
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)


class FakeSession:
    def __init__(self):
        self.recorder = Recorder()
        self.closed = False
        self.worker_kwargs: dict = {}

    def create_worker(self, **kwargs):
        self.worker_kwargs = kwargs
        return PipelineWorker(
            Pipeline([self.recorder]), cancel_on_idle_timeout=False, idle_timeout_secs=None
        )

    async def close(self):
        self.closed = True


class FakeDailyTransport:
    """What Pipecat's create_transport would return for a room, minus the room."""

    def __init__(self, room_url, token, bot_name, params):
        self.room_url, self.token, self.bot_name, self.params = room_url, token, bot_name, params
        self.handlers: dict = {}

    def event_handler(self, name):
        def register(fn):
            self.handlers[name] = fn
            return fn

        return register

    def input(self):
        return IdentityFilter()

    def output(self):
        return IdentityFilter()


def test_transport_params_give_audio_both_ways():
    params = transport_params()
    daily = params["daily"]()
    assert isinstance(daily, DailyParams)
    assert daily.audio_in_enabled and daily.audio_out_enabled
    webrtc = params["webrtc"]()
    assert webrtc.audio_in_enabled and webrtc.audio_out_enabled


async def test_a_daily_session_greets_on_join_and_ends_on_leave(monkeypatch):
    # Pipecat's real create_transport picks our "daily" factory; only DailyTransport is faked.
    created: list[FakeDailyTransport] = []

    def fake_daily(*args, **kwargs):
        created.append(FakeDailyTransport(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr("pipecat.transports.daily.transport.DailyTransport", fake_daily)
    session = FakeSession()

    async def fake_build(settings, **kwargs):
        session.kwargs = kwargs
        return session

    monkeypatch.setattr(bot_runner, "build_bot_session", fake_build)
    args = DailyRunnerArguments(room_url="https://example.daily.co/room", token="tok")
    run = asyncio.create_task(run_bot(args, BotSettings()))
    while not created or "on_client_disconnected" not in created[-1].handlers:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    transport = created[-1]
    assert (transport.room_url, transport.token) == ("https://example.daily.co/room", "tok")
    assert isinstance(transport.params, DailyParams)
    await asyncio.sleep(0.2)  # the worker starts
    await transport.handlers["on_client_connected"](transport, {"id": "p1"})
    for _ in range(100):
        if any(isinstance(f, TTSSpeakFrame) for f in session.recorder.frames):
            break
        await asyncio.sleep(0.02)
    spoken = [f.text for f in session.recorder.frames if isinstance(f, TTSSpeakFrame)]
    assert spoken == [OFFLINE_GREETING]
    await transport.handlers["on_client_disconnected"](transport, {"id": "p1"})
    await asyncio.wait_for(run, 10)
    assert session.closed
    assert session.worker_kwargs["idle_timeout_secs"] == args.pipeline_idle_timeout_secs


@pytest.mark.network
@pytest.mark.skipif(not os.getenv("DAILY_API_KEY"), reason="needs DAILY_API_KEY and the network")
async def test_a_real_daily_room_can_be_created_and_joined():
    import aiohttp
    from pipecat.runner.daily import configure
    from pipecat.transports.daily.transport import DailyTransport

    async with aiohttp.ClientSession() as http:
        room = await configure(http)
    transport = DailyTransport(
        room.room_url, room.token, "speculative-bot-test", daily_params_for_test()
    )
    joined = asyncio.Event()

    @transport.event_handler("on_joined")
    async def _on_joined(_transport, _data):
        joined.set()

    worker = PipelineWorker(
        Pipeline([transport.input(), transport.output()]), idle_timeout_secs=None
    )
    from pipecat.workers.runner import WorkerRunner

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(joined.wait(), 30)
    finally:
        await worker.cancel()
        await task


def daily_params_for_test():
    return bot_runner.daily_params()

"""The plain Pipecat 1.14 bot every example starts from (no plugin piece here).

Deepgram STT -> user aggregator (Silero VAD) -> OpenAI -> ElevenLabs, keys from the environment,
run with Pipecat's development runner. Each ``NN_*.py`` example swaps in one plugin piece; diff it
against this file to see exactly what the piece costs to adopt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.workers.runner import WorkerRunner

SYSTEM_PROMPT = "You are a helpful voice assistant. Answer in one or two short spoken sentences."


def env(name: str, default: str | None = None) -> str:
    value = os.getenv(name, default)
    if not value:
        raise SystemExit(f"set {name} (see .env.example)")
    return value


def deepgram_stt(**kwargs: Any) -> DeepgramSTTService:
    return DeepgramSTTService(api_key=env("DEEPGRAM_API_KEY"), **kwargs)


def openai_settings() -> OpenAILLMService.Settings:
    return OpenAILLMService.Settings(
        model=os.getenv("OPENAI_MODEL", "gpt-4o-mini"), system_instruction=SYSTEM_PROMPT
    )


def elevenlabs_tts(**kwargs: Any) -> ElevenLabsTTSService:
    return ElevenLabsTTSService(
        api_key=env("ELEVENLABS_API_KEY"),
        settings=ElevenLabsTTSService.Settings(
            voice=os.getenv("ELEVENLABS_VOICE_ID", "21m00Tcm4TlvDq8ikWAM")
        ),
        **kwargs,
    )


def transport_params() -> dict[str, Callable[[], Any]]:
    def daily() -> Any:
        from pipecat.transports.daily.transport import DailyParams

        return DailyParams(audio_in_enabled=True, audio_out_enabled=True)

    def webrtc() -> Any:
        from pipecat.transports.base_transport import TransportParams

        return TransportParams(audio_in_enabled=True, audio_out_enabled=True)

    return {"daily": daily, "webrtc": webrtc}


async def run(
    runner_args: RunnerArguments,
    create_pipeline: Callable[[Any], tuple[Pipeline, Sequence[BaseObserver]]],
) -> None:
    """Create the transport, build the example's pipeline and run it until the call ends."""
    from pipecat.runner.utils import create_transport

    transport = await create_transport(runner_args, transport_params())
    pipeline, observers = create_pipeline(transport)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        observers=list(observers),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    @transport.event_handler("on_client_disconnected")
    async def _on_client_disconnected(_transport: Any, _client: Any) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()


def chain(*processors: FrameProcessor | None) -> Pipeline:
    return Pipeline([p for p in processors if p is not None])

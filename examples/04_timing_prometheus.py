"""Example 4: turn timing with Prometheus and Grafana. A plain Pipecat bot, measured.

What changes against ``_plain_bot.py``: a ``TurnTimingObserver`` (one clock, every turn measured
from the real end of speech) with a JSONL file and a Prometheus endpoint. Import
``examples/grafana/pipecat_speculative_dashboard.json`` into Grafana with your Prometheus as its
data source. Alerts (slow turns, high cancel rate, failed warmups) are logged and reach
``on_alert``.

    python examples/04_timing_prometheus.py -t webrtc     # + pip install 'pipecat-speculative[prometheus]'
    curl localhost:9464/metrics
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plain_bot import chain, deepgram_stt, elevenlabs_tts, env, openai_settings, run
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.services.openai.llm import OpenAILLMService

from pipecat_speculative import TurnTimingObserver
from pipecat_speculative.metrics import JSONLSink, PrometheusSink

GRAFANA_DASHBOARD = (
    Path(__file__).resolve().parent / "grafana" / "pipecat_speculative_dashboard.json"
)

# One endpoint per process: sessions of a runner process share it.
PROMETHEUS = PrometheusSink()


def serve_metrics(port: int | None = None) -> int:
    return PROMETHEUS.serve(port if port is not None else int(os.getenv("PROMETHEUS_PORT", "9464")))


def create_pipeline(transport: Any, *, jsonl: str | Path = "out/example_turns.jsonl"):
    stt = deepgram_stt()
    llm = OpenAILLMService(api_key=env("OPENAI_API_KEY"), settings=openai_settings())
    tts = elevenlabs_tts()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
    timing = TurnTimingObserver(sinks=[JSONLSink(jsonl), PROMETHEUS])  # <- the plugin

    @timing.event_handler("on_alert")
    async def _on_alert(_observer: Any, alert: Any) -> None:
        logger.warning(f"turn timing alert: {alert}")  # page someone, post to Slack, ...

    pipeline = chain(
        transport.input(),
        stt,
        aggregators.user(),
        llm,
        tts,
        transport.output(),
        aggregators.assistant(),
    )
    return pipeline, [timing]


async def bot(runner_args: RunnerArguments):
    await run(runner_args, create_pipeline)


if __name__ == "__main__":
    serve_metrics()
    from pipecat.runner.run import main

    main()

"""Example 3: warm services. A plain Pipecat bot whose connections are open before the first turn.

What changes against ``_plain_bot.py``: the three services are the plugin's warm variants. The
OpenAI pool is warmed with a token-free request (and a spare connection opened after each
cancelled stream), the Deepgram socket is open before the user speaks, and the ElevenLabs socket
and context are ready early. Stock services pay TCP + TLS on the first turn (+0.5-0.8 s).

    python examples/03_warm_services.py -t webrtc
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plain_bot import chain, env, openai_settings, run
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

from pipecat_speculative import SpeculativeOpenAILLMService
from pipecat_speculative.services.warm_deepgram_stt_service import WarmDeepgramSTTService
from pipecat_speculative.services.warm_elevenlabs_tts_service import WarmElevenLabsTTSService


def log_warmup(entry: Any) -> None:
    logger.info(f"warmed: {entry}")


def create_pipeline(transport: Any):
    stt = WarmDeepgramSTTService(api_key=env("DEEPGRAM_API_KEY"), warmup_listener=log_warmup)
    llm = SpeculativeOpenAILLMService(  # warm OpenAI pool (and speculation-aware)
        api_key=env("OPENAI_API_KEY"), settings=openai_settings(), warmup_listener=log_warmup
    )
    tts = WarmElevenLabsTTSService(
        api_key=env("ELEVENLABS_API_KEY"),
        settings=ElevenLabsTTSService.Settings(
            voice=os.getenv("ELEVENLABS_VOICE_ID", "21m00Tcm4TlvDq8ikWAM")
        ),
        warmup_listener=log_warmup,
    )
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = chain(
        transport.input(),
        stt,
        aggregators.user(),
        llm,
        tts,
        transport.output(),
        aggregators.assistant(),
    )
    return pipeline, []


async def bot(runner_args: RunnerArguments):
    await run(runner_args, create_pipeline)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()

"""Example 1: speculation only. A plain Pipecat bot with this plugin's speculative turns.

What changes against ``_plain_bot.py``: the user aggregator gets ``speculative_turn_strategies()``
(adaptive debounce + free-patience commit), the LLM is ``SpeculativeOpenAILLMService`` (drops a
withdrawn speculation even while queued), and ``TranscriptionGuard`` follows the STT.

    python examples/01_speculation.py -t webrtc     # DEEPGRAM_, OPENAI_, ELEVENLABS_API_KEY
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plain_bot import chain, deepgram_stt, elevenlabs_tts, env, openai_settings, run
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments

from pipecat_speculative import (
    SpeculativeOpenAILLMService,
    TranscriptionGuard,
    speculative_turn_strategies,
)


def create_pipeline(transport: Any):
    stt = deepgram_stt()
    llm = SpeculativeOpenAILLMService(api_key=env("OPENAI_API_KEY"), settings=openai_settings())
    tts = elevenlabs_tts()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=speculative_turn_strategies(),  # <- the plugin
            vad_analyzer=SileroVADAnalyzer(),
        ),
    )
    pipeline = chain(
        transport.input(),
        stt,
        TranscriptionGuard(),  # <- the plugin: keeps a final transcript through the turn start
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

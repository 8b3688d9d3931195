"""The ready-made speculative voice bot, in Pipecat's runner conventions.

    python bots/speculative_bot.py -t webrtc     # browser: http://localhost:7860/offline
                                                 # (or /client, the runner's page: needs network)
    python bots/speculative_bot.py -t daily      # a Daily room (needs DAILY_API_KEY)

Cloud services (Deepgram, OpenAI, ElevenLabs, Pinecone) when their keys are set; without keys it
runs offline (Whisper tiny.en, the OpenAI stand-in, Piper, the embedded RAG store) and says so.
Configuration: environment variables, see ``.env.example`` and ``docs/bot.md``.
"""

from __future__ import annotations

import sys

from loguru import logger
from pipecat.runner.types import RunnerArguments

from pipecat_speculative.bot import BotSettings, ConfigError, add_offline_client_route, run_bot

try:  # a .env next to the working directory, as Pipecat's examples do
    from dotenv import load_dotenv

    load_dotenv(override=False)
except ImportError:  # pragma: no cover - python-dotenv comes with pipecat-ai
    pass


def _transport_arg(argv: list[str]) -> str | None:
    if "-d" in argv or "--direct" in argv:
        return "daily"
    for i, arg in enumerate(argv):
        if arg in ("-t", "--transport") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--transport="):
            return arg.split("=", 1)[1]
    return None


def load_settings(argv: list[str] | None = None) -> BotSettings:
    """Settings from the environment, checked for the chosen transport (exits on error)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = BotSettings.from_env()
        settings.check(transport=_transport_arg(argv))
    except ConfigError as e:
        sys.exit(f"speculative_bot: {e}")
    return settings


async def bot(runner_args: RunnerArguments):
    """Entry point the Pipecat runner (and Pipecat Cloud) calls once per session."""
    try:
        settings = BotSettings.from_env()
        settings.check()
    except ConfigError as e:
        # On Pipecat Cloud there is no __main__ check: say it in one line and end the session.
        logger.error(f"speculative_bot: {e}")
        return
    await run_bot(runner_args, settings)


if __name__ == "__main__":
    logger.info(f"speculative_bot: {load_settings().describe()}")
    from pipecat.runner.run import app, main

    # /client (the runner's prebuilt page) needs the network; /offline does not.
    add_offline_client_route(app)
    logger.info("offline browser client: http://localhost:7860/offline (or --port)")
    main()

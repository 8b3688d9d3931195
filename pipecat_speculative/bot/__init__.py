"""The ready-made bot: settings from the environment, cloud or offline services, runner glue.

``bots/speculative_bot.py`` is the runnable file; ``docs/bot.md`` explains running and deploying it.
"""

from pipecat_speculative.bot.bot_runner import (
    OFFLINE_CLIENT_PAGE,
    add_offline_client_route,
    daily_params,
    run_bot,
    transport_params,
    webrtc_params,
)
from pipecat_speculative.bot.bot_session import (
    OFFLINE_GREETING,
    build_bot_session,
    greeting,
    shutdown_resources,
)
from pipecat_speculative.bot.bot_settings import ENV_VARS, BotSettings, ConfigError

__all__ = [
    "BotSettings",
    "ConfigError",
    "ENV_VARS",
    "OFFLINE_CLIENT_PAGE",
    "OFFLINE_GREETING",
    "add_offline_client_route",
    "build_bot_session",
    "daily_params",
    "greeting",
    "run_bot",
    "shutdown_resources",
    "transport_params",
    "webrtc_params",
]

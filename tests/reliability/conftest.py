"""Log capture for the reliability tests: every loguru message, DEBUG and above."""

import pytest
from loguru import logger


@pytest.fixture
def all_logs():
    """Every loguru message logged during the test, as ``"LEVEL message"``."""
    messages: list[str] = []
    sink_id = logger.add(
        lambda m: messages.append(f"{m.record['level'].name} {m.record['message']}"),
        level="DEBUG",
    )
    yield messages
    logger.remove(sink_id)

"""Shared helpers for the warm-service tests: log capture."""

import pytest
from loguru import logger


@pytest.fixture
def log_messages():
    """Every loguru message (INFO and above) logged during the test, as ``"LEVEL message"``."""
    messages: list[str] = []
    sink_id = logger.add(
        lambda m: messages.append(f"{m.record['level'].name} {m.record['message']}"), level="INFO"
    )
    yield messages
    logger.remove(sink_id)

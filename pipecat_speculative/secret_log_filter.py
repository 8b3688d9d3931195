"""Keep API keys out of stdlib logs: a filter for the ``websockets`` handshake debug lines.

When an application turns on stdlib ``DEBUG`` logging (``logging.basicConfig(level=DEBUG)`` is a
common first step when debugging a bot), the ``websockets`` library logs every handshake header,
one ``"> %s: %s"`` record per header. The ElevenLabs socket authenticates with an ``xi-api-key``
header and Deepgram with ``Authorization: Token ...``, so the keys would land in the log file.

:func:`install_secret_log_filter` attaches :class:`SecretHeaderFilter` to the ``websockets``
client and server loggers (the library logs to exactly those names, not to children). The filter
masks the value and keeps the record, so the handshake is still visible when debugging. The
modules that open these sockets install it when imported; installing twice is a no-op.
"""

from __future__ import annotations

import logging

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "SecretHeaderFilter",
    "install_secret_log_filter",
    "mask_secret",
]

MASK = "***"
"""What a secret is replaced with."""

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "xi-api-key",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
    }
)
"""Header names (lower case) whose values are never logged."""

_HEADER_FORMATS = frozenset({"> %s: %s", "< %s: %s"})
_LOGGERS = ("websockets.client", "websockets.server")


def mask_secret(value: str | None) -> str:
    """``"***"`` for a set secret, ``""`` for an unset one: a repr can say whether a key is set."""
    return MASK if value else ""


class SecretHeaderFilter(logging.Filter):
    """Masks the value of secret headers in ``websockets`` handshake records."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place when it is a secret header line; never drop a record."""
        if record.msg in _HEADER_FORMATS and isinstance(record.args, tuple):
            if len(record.args) == 2 and str(record.args[0]).lower() in SECRET_HEADERS:
                record.args = (record.args[0], MASK)
        return True


def install_secret_log_filter() -> SecretHeaderFilter:
    """Attach the filter to the ``websockets`` loggers once; returns the installed filter."""
    installed: SecretHeaderFilter | None = None
    for name in _LOGGERS:
        log = logging.getLogger(name)
        existing = next((f for f in log.filters if isinstance(f, SecretHeaderFilter)), None)
        if existing is None:
            existing = installed or SecretHeaderFilter()
            log.addFilter(existing)
        installed = installed or existing
    assert installed is not None
    return installed

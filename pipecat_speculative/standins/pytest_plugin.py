"""Pytest fixtures that start the loopback stand-ins (registered through the ``pytest11`` entry point)."""

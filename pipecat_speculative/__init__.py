"""pipecat-speculative: speculative turns, adaptive debounce and trustworthy timing for Pipecat."""

__all__: list[str] = []

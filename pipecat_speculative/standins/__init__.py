"""standins."""

from pipecat_speculative.standins.deepgram_server import DeepgramStandin as DeepgramStandin

"""Moved to :mod:`pipecat_speculative.testing.timeline` (shipped for users); kept for old imports.

Import from ``pipecat_speculative.testing`` in new tests; remove this file once nothing imports it.
"""

from pipecat_speculative.testing.timeline import STOP_SECS, Segment, Timeline, final_transcription

_final = final_transcription

__all__ = ["STOP_SECS", "Segment", "Timeline", "_final", "final_transcription"]

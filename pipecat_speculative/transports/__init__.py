"""Transports for running a bot without devices: a paced, speakerless output."""

from pipecat_speculative.transports.paced_output_transport import PacedOutputTransport

__all__ = ["PacedOutputTransport"]

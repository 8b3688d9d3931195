"""Frame processors the plugin adds to a pipeline."""

from pipecat_speculative.processors.speculative_output_gate import SpeculativeOutputGate

__all__ = ["SpeculativeOutputGate"]

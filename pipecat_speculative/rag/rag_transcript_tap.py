"""Feeds the transcript to a ParallelRAGProcessor for prefetch, from before the user aggregator."""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text

from pipecat_speculative.rag.parallel_rag_processor import ParallelRAGProcessor

__all__ = ["RAGTranscriptTap"]


class RAGTranscriptTap(FrameProcessor):
    """Passes every frame on and tells the RAG processor what the user has said so far.

    Pipecat's user aggregator consumes interim and final transcripts and forwards none of
    them, so a processor after it (where the RAG processor must be, to see the contexts) never
    sees the words while the user is still speaking. This tap sits just before the aggregator
    and calls :meth:`ParallelRAGProcessor.prefetch` with the turn's text: the final
    transcripts so far joined the way the aggregator joins them (Pipecat's
    ``concatenate_aggregated_text``), plus the latest interim. The text restarts at each turn
    end (the aggregator broadcasts ``UserStoppedSpeakingFrame`` upstream too).

    Args:
        rag: The processor to feed.
        use_interim: Also prefetch on interim transcripts (the debounce keeps this cheap).
        **kwargs: ``FrameProcessor`` arguments.
    """

    def __init__(self, rag: ParallelRAGProcessor, *, use_interim: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._rag = rag
        self._use_interim = use_interim
        self._finals: list[TextPartForConcatenation] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Note transcripts and turn ends, then pass the frame on unchanged."""
        await super().process_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame):
            self._finals = []
        elif direction == FrameDirection.DOWNSTREAM and isinstance(frame, TranscriptionFrame):
            if frame.text.strip():
                self._finals.append(
                    TextPartForConcatenation(
                        frame.text, includes_inter_part_spaces=frame.includes_inter_frame_spaces
                    )
                )
                self._rag.prefetch(concatenate_aggregated_text(self._finals))
        elif (
            self._use_interim
            and direction == FrameDirection.DOWNSTREAM
            and isinstance(frame, InterimTranscriptionFrame)
            and frame.text.strip()
        ):
            part = TextPartForConcatenation(
                frame.text, includes_inter_part_spaces=frame.includes_inter_frame_spaces
            )
            self._rag.prefetch(concatenate_aggregated_text([*self._finals, part]))
        await self.push_frame(frame, direction)

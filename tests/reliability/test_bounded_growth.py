"""Per-session structures stay bounded over a long session."""

from pipecat_speculative.metrics.speculation_ledger import SpeculationLedger
from pipecat_speculative.metrics.turn_record import HISTORY_LIMIT, DebounceEntry, WarmupEntry
from pipecat_speculative.metrics.turn_timeline import TurnTimingTracker

REPLIES = 2_000


def test_bot_initiated_replies_do_not_accumulate_in_the_tracker():
    # Greetings and app-triggered replies belong to no user turn, so no turn close forgets them.
    t = TurnTimingTracker(session_id="long")
    for i in range(REPLIES):
        at = float(i)
        t.inference_started(at, key=i, speculative=False, text=None)
        t.llm_processing_started(at + 0.01, llm="llm", key=i)
        t.tts_started(at + 0.2, context_id=f"ctx-{i}")
        t.tts_audio(at + 0.3, context_id=f"ctx-{i}")
        t.tts_stopped(at + 0.5, context_id=f"ctx-{i}")
        t.drain()
    sizes = {
        "inferences": len(t._inferences),
        "awaiting_llm": len(t._awaiting_llm),
        "tts_contexts": len(t._tts_contexts),
    }
    assert max(sizes.values()) <= 256, sizes
    # The most recent reply is still tracked (a late frame of it is still timed).
    assert f"ctx-{REPLIES - 1}" in t._tts_contexts


def test_summary_history_lists_are_bounded_and_the_totals_still_count_everything():
    ledger = SpeculationLedger("long")
    for i in range(1_000):
        ledger.debounce_changed(
            DebounceEntry(
                at_turn=i, old_secs=0.1, new_secs=0.2, reason="r", window_cancel_rate=0.5, samples=5
            )
        )
        ledger.warmup(WarmupEntry(service="openai", secs=0.1, ok=True))
    summary = ledger.summary()
    assert len(summary.debounce_history) == HISTORY_LIMIT
    assert len(summary.warmups) == HISTORY_LIMIT
    assert summary.debounce_history[-1].at_turn == 999  # the latest are kept
    assert (summary.debounce_changes, summary.warmups_recorded) == (1_000, 1_000)

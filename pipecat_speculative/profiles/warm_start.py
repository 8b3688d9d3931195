"""Between a live strategy and a stored profile: a snapshot at session end, a warm start at the next.

Without a profile every call starts cold: the debounce at its initial delay with no pauses to
reason from, the readiness at a guess, patience with nothing remembered. A warm start puts back
what the last session ended with, so the first turn behaves like the tenth::

    session end:   profile = snapshot_profile(strategy, previous=profile)   -> store.put
    session start: profile = await store.get(user)  -> warm_start(strategy, profile)

What a warm start restores, and why that much and no more:

- the debounce delay (clamped to the current tuning), its pauses and outcome window; it then
  waits for ``min_samples`` outcomes of the new session before moving, so a stale profile is
  corrected at the same pace as a cold start learns;
- the readiness estimate as the prior: the first measurement of the session replaces it, since
  readiness depends on today's services more than on the user;
- the pauses commit patience remembers, with their age, so its memory forgets them as if the
  sessions had been one call (a profile never slows fluent turns more than a call would), and
  the turns they were looked for in, so a *habit* of long pauses (most turns of the last calls)
  gives the next call's first turn the patience the tenth would have had.
"""

from __future__ import annotations

import time

from loguru import logger

from pipecat_speculative.profiles.profile import TurnTakingProfile
from pipecat_speculative.turns.adaptive_debounce import DebounceSnapshot
from pipecat_speculative.turns.commit_patience import PatienceSnapshot
from pipecat_speculative.turns.speculation_planner import SpeculationPlanner
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)

__all__ = ["snapshot_profile", "warm_start"]


def _planner(source: SpeculativeUserTurnStopStrategy | SpeculationPlanner) -> SpeculationPlanner:
    if isinstance(source, SpeculativeUserTurnStopStrategy):
        return source.planner
    if isinstance(source, SpeculationPlanner):
        return source
    raise TypeError(
        f"expected a SpeculativeUserTurnStopStrategy or SpeculationPlanner, got {type(source)}"
    )


def snapshot_profile(
    source: SpeculativeUserTurnStopStrategy | SpeculationPlanner,
    *,
    previous: TurnTakingProfile | None = None,
    now: float | None = None,
) -> TurnTakingProfile:
    """The profile to store at session end: what the strategy knows now, bounded.

    Args:
        source: The session's strategy (or its planner).
        previous: The profile this session was warm-started from, if any. Its counters (turns,
            sessions, cut-ins, readiness measurements) are carried on; its evidence (pauses,
            outcomes) is already in the strategy through the warm start. A session without a
            single user turn returns it unchanged: nothing new was learned.
        now: Unix time to stamp the profile with; the current time if None.

    Returns:
        A new profile; the caller stores it.
    """
    planner = _planner(source)
    session_turns = planner.turn
    if previous is not None and session_turns == 0:
        return previous
    debounce = planner.debounce.snapshot()
    patience = planner.patience.snapshot(planner.turn)
    pp = planner.patience.params
    if patience.pauses:
        longest = max(s for _, s in patience.pauses)
        commit_patience = min(pp.max_secs, max(pp.floor_secs, longest * pp.factor + pp.margin_secs))
    else:
        commit_patience = pp.floor_secs

    measured = planner.readiness_measurements
    readiness = planner.readiness_secs if measured else None
    measurements = measured
    if previous is not None:
        measurements += previous.readiness_measurements
        if readiness is None:
            readiness = previous.readiness_secs

    def carried(name: str) -> int:
        return getattr(previous, name) if previous is not None else 0

    return TurnTakingProfile.bounded(
        speculation_delay_secs=debounce.delay_secs,
        pauses=debounce.pauses,
        recent_outcomes=debounce.outcomes,
        readiness_secs=readiness,
        readiness_measurements=measurements,
        patience_pauses=patience.pauses,
        commit_patience_secs=commit_patience,
        cut_ins=carried("cut_ins") + planner.patience.cut_ins,
        turns_seen=carried("turns_seen") + session_turns,
        sessions_seen=carried("sessions_seen") + 1,
        updated_at=time.time() if now is None else now,
    )


def warm_start(
    target: SpeculativeUserTurnStopStrategy | SpeculationPlanner, profile: TurnTakingProfile
):
    """Start a strategy (or planner) from a stored profile instead of cold.

    Call it before the first user turn (e.g. right after building the strategy, or in the
    transport's ``on_client_connected``). Later it still works, treating the profile as the
    turns just before the current one.
    """
    planner = _planner(target)
    planner.debounce.restore(
        DebounceSnapshot(
            delay_secs=profile.speculation_delay_secs,
            pauses=tuple((p.secs, p.resumed) for p in profile.pauses),
            outcomes=profile.recent_outcomes,
        )
    )
    planner.patience.restore(
        PatienceSnapshot(
            pauses=tuple((p.turns_ago, p.secs) for p in profile.patience_pauses),
            turns=profile.turns_seen,
        ),
        turn=planner.turn,
    )
    if profile.readiness_secs is not None:
        planner.seed_readiness(profile.readiness_secs)
    logger.info(
        f"warm start from a profile of {profile.turns_seen} turns in {profile.sessions_seen} "
        f"sessions: speculation delay {planner.debounce.delay_secs:.3f} s, readiness "
        f"{planner.readiness_secs:.2f} s"
    )

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecat_speculative.profiles import (
    MAX_JSON_BYTES,
    MAX_OUTCOMES,
    MAX_PATIENCE_PAUSES,
    MAX_PAUSES,
    SCHEMA_VERSION,
    PatiencePause,
    PauseSample,
    ProfileError,
    ProfileVersionError,
    TurnTakingProfile,
)


def full_profile() -> TurnTakingProfile:
    return TurnTakingProfile.bounded(
        speculation_delay_secs=0.45,
        pauses=[(0.7 + i / 100, i % 3 == 0) for i in range(200)],
        recent_outcomes=[i % 4 == 0 for i in range(200)],
        readiness_secs=0.612345,
        readiness_measurements=17,
        patience_pauses=[(i % 5 + 1, 0.8) for i in range(50)],
        commit_patience_secs=1.3,
        cut_ins=2,
        turns_seen=140,
        sessions_seen=10,
        updated_at=1_800_000_000.5,
    )


def test_round_trip_is_exact():
    profile = full_profile()
    again = TurnTakingProfile.from_json(profile.to_json())
    assert again == profile
    assert again.to_json() == profile.to_json()


def test_an_empty_profile_round_trips():
    profile = TurnTakingProfile(updated_at=1.0)
    assert TurnTakingProfile.from_json(profile.to_json()) == profile
    assert profile.window_cancel_rate is None


def test_bounded_keeps_the_newest_items_and_clamps():
    profile = full_profile()
    assert len(profile.pauses) == MAX_PAUSES
    assert len(profile.recent_outcomes) == MAX_OUTCOMES
    assert len(profile.patience_pauses) == MAX_PATIENCE_PAUSES
    # The newest are kept: the last pause was 0.7 + 199/100.
    assert profile.pauses[-1] == PauseSample(2.69, False)
    assert profile.readiness_secs == 0.612
    clamped = TurnTakingProfile.bounded(
        speculation_delay_secs=-3, pauses=[(1e9, True), (-1, False)], readiness_secs=1e6
    )
    assert clamped.speculation_delay_secs == 0.0
    assert clamped.pauses == (PauseSample(60.0, True), PauseSample(0.0, False))
    assert clamped.readiness_secs == 30.0


def test_a_full_profile_stays_small():
    assert len(full_profile().to_json()) < MAX_JSON_BYTES / 2


def test_derived_counts_and_rates():
    profile = TurnTakingProfile.bounded(
        speculation_delay_secs=0.2,
        pauses=[(0.5, True), (0.9, False), (0.3, True)],
        recent_outcomes=[True, False, False, True, False],
    )
    assert profile.recent_withdrawn == 2
    assert profile.recent_adopted == 3
    assert profile.window_cancel_rate == pytest.approx(0.4)
    assert profile.resumed_pause_secs == (0.5, 0.3)
    assert profile.turn_end_pause_secs == (0.9,)


def test_a_profile_has_no_string_field_so_no_text_can_land_in_it():
    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    assert list(strings(full_profile().to_dict())) == []
    data = full_profile().to_dict()
    data["transcript"] = "my phone number is 555 0100"
    with pytest.raises(ProfileError, match="unknown: \\['transcript'\\]"):
        TurnTakingProfile.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("speculation_delay_secs", -0.1, "outside"),
        ("speculation_delay_secs", math.inf, "outside"),
        ("speculation_delay_secs", "0.3", "must be a number"),
        ("speculation_delay_secs", True, "must be a number"),
        ("readiness_secs", 0, "outside \\(0"),
        ("turns_seen", -1, "outside"),
        ("turns_seen", 1.5, "must be an integer"),
        ("recent_outcomes", [1, 0], "true or false"),
        ("recent_outcomes", [True] * (MAX_OUTCOMES + 1), "at most"),
        ("pauses", [[0.5, True]] * (MAX_PAUSES + 1), "at most"),
        ("pauses", [[0.5]], "is a pair"),
        ("pauses", [[0.5, "yes"]], "true or false"),
        ("pauses", [[1000.0, True]], "outside"),
        ("patience_pauses", [[-1, 0.5]], "outside"),
        ("pauses", 5, "malformed"),
    ],
)
def test_out_of_bounds_or_mistyped_fields_are_refused(field, value, message):
    data = full_profile().to_dict()
    data[field] = value
    with pytest.raises(ProfileError, match=message):
        TurnTakingProfile.from_dict(data)


def test_missing_fields_are_refused():
    data = full_profile().to_dict()
    del data["turns_seen"]
    with pytest.raises(ProfileError, match="missing: \\['turns_seen'\\]"):
        TurnTakingProfile.from_dict(data)


def test_a_newer_schema_is_refused_clearly():
    data = full_profile().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    data["something_new"] = 1
    with pytest.raises(ProfileVersionError, match="newer than this code reads") as info:
        TurnTakingProfile.from_json(json.dumps(data))
    assert info.value.version == SCHEMA_VERSION + 1


def test_an_older_schema_without_migration_is_refused_with_a_reason():
    data = full_profile().to_dict()
    data["schema_version"] = 0
    with pytest.raises(ProfileVersionError, match="no migration"):
        TurnTakingProfile.from_dict(data)


def test_an_older_schema_with_a_migration_is_migrated(monkeypatch):
    from pipecat_speculative.profiles import profile as module

    def from_v0(old):
        new = {k: v for k, v in old.items() if k != "delay"}
        new["speculation_delay_secs"] = old["delay"]
        new["schema_version"] = 1
        return new

    monkeypatch.setitem(module._MIGRATIONS, 0, from_v0)
    data = full_profile().to_dict()
    data["schema_version"] = 0
    data["delay"] = data.pop("speculation_delay_secs")
    assert TurnTakingProfile.from_dict(data) == full_profile()


@pytest.mark.parametrize("version", [None, "1", 1.0, True])
def test_a_missing_or_mistyped_version_is_refused(version):
    data = full_profile().to_dict()
    data["schema_version"] = version
    with pytest.raises(ProfileVersionError):
        TurnTakingProfile.from_dict(data)


def test_garbage_and_oversized_input_is_refused_unparsed():
    with pytest.raises(ProfileError, match="not valid JSON"):
        TurnTakingProfile.from_json("{nope")
    with pytest.raises(ProfileError, match="a JSON object"):
        TurnTakingProfile.from_json("[1, 2]")
    with pytest.raises(ProfileError, match="at most"):
        TurnTakingProfile.from_json(" " * (MAX_JSON_BYTES + 1))


def test_the_constructor_refuses_what_bounded_would_clamp():
    with pytest.raises(ProfileError):
        TurnTakingProfile(pauses=(PauseSample(0.5, True),) * (MAX_PAUSES + 1))
    with pytest.raises(ProfileError):
        TurnTakingProfile(patience_pauses=(PatiencePause(1, -0.5),))
    with pytest.raises(ProfileVersionError):
        TurnTakingProfile(schema_version=SCHEMA_VERSION + 1)


finite = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(
    delay=finite,
    pauses=st.lists(st.tuples(finite, st.booleans()), max_size=150),
    outcomes=st.lists(st.booleans(), max_size=150),
    readiness=st.one_of(st.none(), finite),
    patience=st.lists(st.tuples(st.integers(-5, 5000), finite), max_size=40),
    counts=st.tuples(*[st.integers(-10, 10**10)] * 4),
)
def test_any_live_state_bounds_into_a_profile_that_round_trips_exactly(
    delay, pauses, outcomes, readiness, patience, counts
):
    # NaN and infinities included: a live estimate gone wrong must still bound into a profile.
    profile = TurnTakingProfile.bounded(
        speculation_delay_secs=delay,
        pauses=pauses,
        recent_outcomes=outcomes,
        readiness_secs=readiness,
        readiness_measurements=counts[0],
        patience_pauses=patience,
        cut_ins=counts[1],
        turns_seen=counts[2],
        sessions_seen=counts[3],
        updated_at=1.0,
    )
    text = profile.to_json()
    assert len(text) <= MAX_JSON_BYTES
    assert TurnTakingProfile.from_json(text) == profile

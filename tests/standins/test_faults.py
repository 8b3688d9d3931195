"""FaultPlan: one-shot, counted and sticky faults, path matching, cancel."""

import pytest

from pipecat_speculative.standins.faults import Fault, FaultKind, FaultPlan


def test_a_one_shot_fault_fires_once():
    plan = FaultPlan()
    fault = plan.http_error(429)
    assert plan.take(FaultKind.HTTP_ERROR, "/x") is fault
    assert plan.take(FaultKind.HTTP_ERROR, "/x") is None
    assert fault.fired == 1
    assert plan.pending == []


def test_a_sticky_fault_fires_until_cancelled():
    plan = FaultPlan()
    fault = plan.disconnect(after=2, times=None)
    assert fault.sticky
    for _ in range(5):
        assert plan.take(FaultKind.DISCONNECT, "/x") is fault
    fault.cancel()
    assert plan.take(FaultKind.DISCONNECT, "/x") is None


def test_faults_match_their_kind_and_path_pattern():
    plan = FaultPlan()
    plan.slow_first_byte(0.5, path="/v1/chat/*")
    assert plan.take(FaultKind.HTTP_ERROR, "/v1/chat/completions") is None
    assert plan.take(FaultKind.SLOW_FIRST_BYTE, "/v1/models") is None
    assert plan.take(FaultKind.SLOW_FIRST_BYTE, "/v1/chat/completions") is not None


def test_counted_faults_fire_in_order_of_arming():
    plan = FaultPlan()
    first = plan.http_error(500, times=2)
    second = plan.http_error(503)
    fired = [plan.take(FaultKind.HTTP_ERROR, "/") for _ in range(4)]
    assert fired == [first, first, second, None]


def test_the_stall_and_withheld_final_faults_carry_their_parameters():
    plan = FaultPlan()
    stall = plan.stall(2.5, after=3, path="/v1/chat/completions")
    withhold = plan.withhold_final()
    bad_audio = plan.malformed("invalid_base64")
    assert (stall.kind, stall.delay_secs, stall.after) == (FaultKind.STALL, 2.5, 3)
    assert plan.take(FaultKind.STALL, "/v1/chat/completions") is stall
    assert plan.take(FaultKind.WITHHOLD_FINAL, "/any") is withhold
    assert plan.take(FaultKind.MALFORMED, "/any").malformed == "invalid_base64"
    assert bad_audio.fired == 1 and plan.pending == []


def test_clear_disarms_everything():
    plan = FaultPlan()
    plan.malformed("missing_fields", times=None)
    plan.clear()
    assert plan.take(FaultKind.MALFORMED, "/") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": FaultKind.HTTP_ERROR, "status": 200},
        {"kind": FaultKind.DISCONNECT, "after": -1},
        {"kind": FaultKind.MALFORMED, "times": 0},
        {"kind": FaultKind.MALFORMED, "malformed": "garbage"},
    ],
)
def test_invalid_faults_are_refused(kwargs):
    with pytest.raises(ValueError):
        Fault(**kwargs)

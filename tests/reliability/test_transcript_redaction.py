"""User words stay out of logs and JSONL by default; JSONL files are private (0600)."""

import json
import os
import stat

import pytest
from loguru import logger

from pipecat_speculative.metrics.sinks.jsonl_sink import JSONLSink
from pipecat_speculative.metrics.sinks.log_sink import LogSink
from pipecat_speculative.metrics.transcript_redaction import redact_text
from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver
from tests.metrics.sessions import speculative_session

WORDS = ("What time is it", "and tomorrow")


@pytest.fixture
def logged():
    """Every loguru record (message and extras) logged during the test, rendered as text."""
    seen: list[str] = []
    handler = logger.add(
        lambda m: seen.append(m.record["message"] + json.dumps(m.record["extra"], default=str)),
        level="DEBUG",
    )
    yield seen
    logger.remove(handler)


def assert_no_words(text: str) -> None:
    for words in WORDS:
        assert words not in text


def test_the_log_sink_drops_user_text_by_default(logged):
    records, summary = speculative_session()
    sink = LogSink(name="T")
    for record in records:
        sink.on_turn(record, summary)
    sink.on_session_end(summary)
    assert_no_words("\n".join(logged))
    assert '"user_text": null' in logged[1]


def test_the_observers_own_log_line_drops_user_text_by_default(logged):
    records, summary = speculative_session()
    observer = TurnTimingObserver()
    (log_sink,) = observer._sinks  # the sink the observer added for ``log=True``
    log_sink.on_turn(records[1], summary)
    assert_no_words("\n".join(logged))


def test_the_observer_can_keep_or_hash_its_log_text(logged):
    records, summary = speculative_session()
    TurnTimingObserver(transcripts="off")._sinks[0].on_turn(records[1], summary)
    TurnTimingObserver(transcripts="hash")._sinks[0].on_turn(records[1], summary)
    assert "and tomorrow" in logged[0]
    assert redact_text("and tomorrow", "hash") in logged[1] and "and tomorrow" not in logged[1]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path, **kwargs):
    records, summary = speculative_session()
    sink = JSONLSink(path, **kwargs)
    for record in records:
        sink.on_turn(record, summary)
    sink.on_session_end(summary)
    sink.close()
    return records


def test_jsonl_hashes_user_text_by_default_and_the_file_is_private(tmp_path):
    path = tmp_path / "turns.jsonl"
    write(path)
    assert_no_words(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    turn = read_jsonl(path)[1]
    # Equal texts still compare equal: the adopted speculation matches the committed text.
    assert turn["user_text"].startswith("sha256:")
    assert turn["speculations"][-1]["text"] == turn["user_text"]
    assert turn["speculations"][0]["text"] != turn["user_text"]


def test_jsonl_drop_and_off(tmp_path):
    write(tmp_path / "drop.jsonl", transcripts="drop")
    turn = read_jsonl(tmp_path / "drop.jsonl")[1]
    assert turn["user_text"] is None
    assert [s["text"] for s in turn["speculations"]] == [None, None]
    records = write(tmp_path / "off.jsonl", transcripts="off")
    assert read_jsonl(tmp_path / "off.jsonl")[1]["user_text"] == records[1].user_text


def test_jsonl_warns_about_an_existing_file_others_can_read(tmp_path, logged):
    path = tmp_path / "shared.jsonl"
    path.touch()
    path.chmod(0o644)
    write(path)
    assert any("others can read it" in m for m in logged)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        JSONLSink("x.jsonl", transcripts="scramble")

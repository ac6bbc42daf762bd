import pytest

from connectors.kafka_source import OffsetPosition, PositionError


@pytest.mark.parametrize("text", ["committed", "earliest", "latest"])
def test_named_positions(text):
    assert OffsetPosition.parse(text).kind == text


def test_timestamp_position():
    position = OffsetPosition.parse("timestamp=2025-01-15T14:00:00Z")
    assert position.kind == "timestamp"
    assert position.timestamp_ms == 1_736_949_600_000


def test_offsets_position():
    position = OffsetPosition.parse("offsets=0:100,3:7")
    assert position.offsets == {0: 100, 3: 7}


@pytest.mark.parametrize("text", ["newest", "timestamp=yesterday", "offsets=", "offsets=0-100", "offsets=-1:5"])
def test_bad_positions_fail_with_the_accepted_forms(text):
    with pytest.raises(PositionError):
        OffsetPosition.parse(text)

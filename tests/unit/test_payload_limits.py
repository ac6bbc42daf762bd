"""Size limits of the one schema: payload bytes, nesting depth, string and list lengths.

Expectations are written out by hand: which payload, which reason, which field."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.test_telemetry_schema import NOW_MS, seed
from udfs.telemetry_schema import (
    DEFAULT_POLICY,
    OVER_LIMIT,
    PAYLOAD_TOO_LARGE,
    Rejection,
    ValidationPolicy,
    decode,
    parse,
    validate,
)


def parsed(event, policy=DEFAULT_POLICY):
    return parse(orjson.dumps(event), policy, now_ms=NOW_MS)


def test_the_seed_payload_is_far_inside_every_default_limit():
    event = seed()
    assert parsed(event) == event
    assert validate(event, now_ms=NOW_MS) == event  # no raw: the limits are walked, same answer


def test_a_payload_over_128_kib_is_refused_before_it_is_parsed():
    event = seed(diagnostics__notes="x" * 140_000)
    raw = orjson.dumps(event)
    result = parse(raw, now_ms=NOW_MS)
    assert result == Rejection(PAYLOAD_TOO_LARGE, None, f"payload is {len(raw):,} bytes; the limit is 131,072")
    assert decode(b"{" * 200_000) == Rejection(PAYLOAD_TOO_LARGE, None, "payload is 200,000 bytes; the limit is 131,072")


def test_a_payload_of_exactly_the_limit_is_not_refused_for_its_size():
    event = seed()
    padding = 131_072 - len(orjson.dumps({**event, "pad": ""}))
    policy = ValidationPolicy(max_string_chars=200_000)
    exact = {**event, "pad": "y" * padding}
    assert len(orjson.dumps(exact)) == 131_072
    assert parsed(exact, policy) == exact


def test_deep_nesting_in_an_unknown_field_is_refused_with_its_path():
    # root (1) → extra (2) → a (3) → … : the 9th level is one too many.
    deep = {"v": 1}
    for key in reversed("abcdefg"):
        deep = {key: deep}
    event = seed(extra=deep)  # extra = level 2, a = 3, …, g = 9
    result = parsed(event)
    assert result == Rejection(OVER_LIMIT, "extra.a.b.c.d.e.f.g", "nested 9 levels deep; the limit is 8")
    assert validate(event, now_ms=NOW_MS) == result


def test_eight_levels_are_allowed():
    deep = {"v": 1}
    for key in reversed("abcdef"):
        deep = {key: deep}
    event = seed(extra=deep)  # g would be level 9; f is level 8
    assert parsed(event) == event


def test_a_long_string_is_refused_with_its_field():
    event = seed(vehicle_status__trip_id="t" * 1_025)
    assert parsed(event) == Rejection(OVER_LIMIT, "vehicle_status.trip_id", "a string of 1,025 characters; the limit is 1,024")
    assert parsed(seed(vehicle_status__trip_id="t" * 1_024))["vehicle_status"]["trip_id"] == "t" * 1_024


def test_a_long_list_is_refused_and_its_items_are_named_by_index():
    codes = [f"E{i}" for i in range(257)]
    assert parsed(seed(diagnostics__error_codes=codes)) == Rejection(
        OVER_LIMIT, "diagnostics.error_codes", "a list of 257 items; the limit is 256"
    )
    codes = ["E1", "E" * 2_000]
    assert parsed(seed(diagnostics__error_codes=codes)) == Rejection(
        OVER_LIMIT, "diagnostics.error_codes[1]", "a string of 2,000 characters; the limit is 1,024"
    )


def test_a_long_field_name_is_refused():
    event = seed(**{"k" * 1_100: 1})
    assert parsed(event) == Rejection(OVER_LIMIT, None, "a field name of 1,100 characters; the limit is 1,024")


def test_limits_come_from_the_policy():
    tight = ValidationPolicy(max_payload_bytes=300, max_depth=2, max_string_chars=10, max_list_items=2)
    raw = orjson.dumps(seed())
    assert parse(raw, tight, now_ms=NOW_MS).reason == PAYLOAD_TOO_LARGE
    roomy = ValidationPolicy(max_depth=2)
    # location is level 2; motion.acceleration is level 3.
    assert parse(raw, roomy, now_ms=NOW_MS) == Rejection(OVER_LIMIT, "motion.acceleration", "nested 3 levels deep; the limit is 2")


def test_brackets_inside_strings_only_make_the_check_walk():
    event = seed(vehicle_status__trip_id="[[[[{{{{[[[[")
    assert parsed(event) == event


@pytest.mark.parametrize("field", ["max_payload_bytes", "max_depth", "max_string_chars", "max_list_items"])
def test_a_limit_below_one_is_refused(field):
    with pytest.raises(ValueError, match="limits must be >= 1"):
        ValidationPolicy(**{field: 0})


def test_the_profiles_limits_are_the_schemas_and_can_be_set():
    from fleet.config import ConfigError, load_config

    assert load_config("local").schema == load_config("production").schema == ValidationPolicy()
    assert load_config("local", {"schema.max_depth": 4}).schema.max_depth == 4
    with pytest.raises(ConfigError, match=r"\[schema\] payload limits must be >= 1"):
        load_config("local", {"schema.max_list_items": 0})

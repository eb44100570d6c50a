"""What the handlers do with a spec before acting: clear errors, transition rules, no crash."""

from __future__ import annotations

import pytest

from mysql_operator.handlers.objects import InvalidSpec, parse_spec


def test_valid_spec_parses() -> None:
    assert parse_spec({"instances": 2, "flavor": "mariadb"}).instances == 2


def test_invalid_spec_message_names_the_field() -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.instances: Input should be less than or equal to 9"):
        parse_spec({"instances": 12})


def test_cross_field_error_is_readable() -> None:
    with pytest.raises(InvalidSpec, match="switchoverTo must name an existing instance"):
        parse_spec({"instances": 2, "replication": {"switchoverTo": 5}})


def test_update_that_shrinks_storage_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="never shrink"):
        parse_spec({"storage": {"size": "1Gi"}}, {"storage": {"size": "5Gi"}})


def test_update_from_an_invalid_old_spec_is_judged_on_its_own() -> None:
    assert parse_spec({"instances": 3}, {"instances": 99}).instances == 3


def test_accepted_spec_round_trips_as_one_string() -> None:
    from mysql_operator.handlers.objects import accepted_spec, encode_accepted_spec
    from mysql_operator.handlers.topology import spec_accepted

    spec = parse_spec({"instances": 2, "replication": {"switchoverTo": 1}})
    text = encode_accepted_spec(spec)
    assert isinstance(text, str) and accepted_spec({"acceptedSpec": text}) == spec.wire()
    assert spec_accepted({"acceptedSpec": text}, spec)
    dropped = parse_spec({"instances": 2})
    assert not spec_accepted({"acceptedSpec": text}, dropped), "a dropped key is a different spec"
    assert accepted_spec({}) is None and accepted_spec({"acceptedSpec": "not json"}) is None

"""A cluster deleted and re-created under the same name is another incarnation (another uid): the
topology pass of the old one must neither act on the new one's pods nor write its status. The pass
checks the live object first (same_incarnation) and writes status with a JSON patch whose first step
tests the uid (status_patch), so the apiserver refuses the whole write on any other incarnation."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator.handlers.topology import same_incarnation
from mysql_operator.kube import status_patch

UID = "aa45ee83-594e-413d-8513-00510d74146b"


@pytest.mark.parametrize(
    ("live", "same"),
    [
        (None, False),  # deleted
        ({}, False),
        ({"metadata": {"uid": UID}}, True),
        ({"metadata": {"uid": "0b5d3c1e-0000-4000-8000-000000000000"}}, False),  # re-created
        ({"metadata": {"uid": UID, "deletionTimestamp": "2026-11-30T14:09:40Z"}}, False),  # being deleted
    ],
)
def test_a_pass_acts_only_on_the_incarnation_it_was_called_for(
    live: dict[str, Any] | None, same: bool
) -> None:
    assert same_incarnation(live, UID) is same


def test_the_status_patch_tests_the_uid_before_any_change() -> None:
    ops = status_patch(UID, {"phase": "Ready", "primary": "db-1"}, {"phase": "Degraded"})
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": UID}
    assert ops[1:] == [
        {"op": "add", "path": "/status/phase", "value": "Ready"},
        {"op": "add", "path": "/status/primary", "value": "db-1"},
    ]


def test_a_none_value_removes_the_key_only_when_the_status_has_it() -> None:
    assert status_patch(UID, {"primary": None}, {"primary": "db-0"})[1:] == [
        {"op": "remove", "path": "/status/primary"}
    ]
    # Removing a missing member would fail the whole patch: nothing to do instead.
    assert status_patch(UID, {"primary": None}, {"phase": "FailingOver"})[1:] == []


def test_no_status_yet_is_added_whole_and_keys_are_escaped_as_json_pointers() -> None:
    assert status_patch(UID, {"phase": "Pending", "primary": None}, None)[1:] == [
        {"op": "add", "path": "/status", "value": {"phase": "Pending"}}
    ]
    assert status_patch(UID, {"a/b~c": 1}, {})[1] == {"op": "add", "path": "/status/a~1b~0c", "value": 1}

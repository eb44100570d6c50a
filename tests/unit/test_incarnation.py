"""A cluster deleted and re-created under the same name is another incarnation (another uid): the
topology pass of the old one must neither act on the new one's pods nor write its status. The pass
checks the live object first (same_incarnation) and writes status with a JSON patch whose first step
tests the uid (status_patch), so the apiserver refuses the whole write on any other incarnation."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from mysql_operator.handlers.topology import (
    OtherIncarnation,
    PassInput,
    _topology_pass,
    same_incarnation,
    write_status,
)
from mysql_operator.handlers.watch import WAKES, WakeBoard
from mysql_operator.kube import KubeError, status_patch

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


# The topology loop (a kopf daemon fed by the watch) reads no live object: the watch says which
# incarnation holds a name (WakeBoard), and every status write is the uid-tested patch above.

OTHER = "0b5d3c1e-0000-4000-8000-000000000000"


def test_the_watch_tells_which_incarnation_holds_a_name() -> None:
    board = WakeBoard()
    key = ("ns", "db")
    board.seen(key, UID)
    assert board.is_current(key, UID)
    board.seen(key, OTHER)  # re-created: the new one's ADDED handled before the old one's DELETED
    board.gone(key, UID, now=0.0)
    assert (board.is_current(key, UID), board.is_current(key, OTHER)) == (False, True)
    board.seen(key, UID)  # a late event of the deleted one changes nothing
    assert (board.is_current(key, UID), board.is_current(key, OTHER)) == (False, True)
    board.gone(key, OTHER, now=1.0)
    assert not board.is_current(key, OTHER)


class RefusingKube:
    """A Kube whose object of that name is another incarnation: the uid test fails every write."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_status(self, *_: Any, uid: str, current: Any = None) -> bool:
        self.patches.append({"uid": uid})
        return False

    def get(self, *_: Any) -> dict[str, Any]:
        raise AssertionError("no read: the watch says whether the loop's cluster still exists")


class LaggingKube(RefusingKube):
    """The same incarnation, whose status no longer has a key the watch's copy still shows."""

    def __init__(self, live_status: dict[str, Any]) -> None:
        super().__init__()
        self.live_status = live_status
        self.writes: list[dict[str, Any]] = []

    def patch_status(self, *args: Any, uid: str, current: Any = None) -> bool:
        status = args[4]
        if any(op["op"] == "remove" and op["path"][len("/status/"):] not in self.live_status
               for op in status_patch(uid, status, current)):
            raise KubeError(422, "unable to remove nonexistent key")  # as the apiserver does
        self.writes.append(dict(status))
        return True

    def get(self, *_: Any) -> dict[str, Any]:
        return {"metadata": {"uid": UID}, "status": self.live_status}


def work(name: str, meta: dict[str, Any] | None = None) -> PassInput:
    metadata = {"name": name, "uid": UID, "resourceVersion": "7", **(meta or {})}
    return PassInput(body=kopf.Body({"metadata": metadata}), namespace="ns", name=name, uid=UID, spec={},
                     meta=metadata, status={"phase": "Ready"}, pods=[], statefulset=None)


def test_a_pass_of_an_old_incarnation_writes_nothing_and_stops() -> None:
    kube = RefusingKube()
    with pytest.raises(OtherIncarnation, match=f"no longer the cluster with uid {UID}"):
        write_status(kube, work("refused"), {"phase": "Ready"}, {"phase": "Degraded"})  # type: ignore[arg-type]
    assert kube.patches == [{"uid": UID}]


def test_a_removal_the_watch_has_not_seen_yet_is_written_against_the_live_status() -> None:
    kube = LaggingKube({"phase": "FailingOver"})
    write_status(kube, work("lagging"), {"phase": "Ready", "primary": "db-0"},  # type: ignore[arg-type]
                 {"phase": "Degraded", "primary": None})
    assert kube.writes == [{"phase": "Degraded"}]


def test_a_pass_of_a_cluster_the_watch_no_longer_shows_touches_nothing() -> None:
    kube = RefusingKube()
    WAKES.seen(("ns", "recreated"), OTHER)
    assert _topology_pass(work("recreated"), kube, logging.getLogger("test")) > 0  # type: ignore[arg-type]
    WAKES.seen(("ns", "deleting"), UID)
    deleting = work("deleting", {"deletionTimestamp": "2026-11-30T14:09:40Z"})
    assert _topology_pass(deleting, kube, logging.getLogger("test")) > 0  # type: ignore[arg-type]
    assert kube.patches == []

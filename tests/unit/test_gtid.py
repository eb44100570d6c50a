"""GTID arithmetic for both flavors."""

from __future__ import annotations

import pytest

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid

A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
B = "4a22fb58-82db-22f2-0f44-d91bb0530673"
MY = Flavor.MYSQL
MARIA = Flavor.MARIADB


def test_mysql_set_parses_merges_and_formats() -> None:
    parsed = gtid.parse_mysql(f"{A.upper()}:1-5:6-9:12,\n{B}:3")
    assert parsed == {A: [(1, 9), (12, 12)], B: [(3, 3)]}
    assert gtid.format_mysql(parsed) == f"{A}:1-9:12,{B}:3"


def test_mysql_tagged_gtids_of_8_4_are_their_own_source() -> None:
    assert gtid.parse_mysql(f"{A}:1-3:mytag:1-2") == {A: [(1, 3)], f"{A}:mytag": [(1, 2)]}


@pytest.mark.parametrize(
    ("container", "other", "expected"),
    [
        (f"{A}:1-10", f"{A}:1-10", True),
        (f"{A}:1-10", f"{A}:1-5", True),
        (f"{A}:1-5", f"{A}:1-10", False),
        (f"{A}:1-10", f"{A}:1-10,{B}:1", False),
        (f"{A}:1-10,{B}:1-2", f"{A}:3-4,{B}:2", True),
        (f"{A}:1-4:6-10", f"{A}:1-10", False),
        ("", "", True),
        (f"{A}:1", "", True),
    ],
)
def test_mysql_includes_is_set_inclusion(container: str, other: str, expected: bool) -> None:
    assert gtid.includes(MY, container, other) is expected


def test_mysql_missing_lists_exactly_the_absent_transactions() -> None:
    assert gtid.missing(MY, f"{A}:1-4:6-10", f"{A}:1-12,{B}:7") == f"{A}:5:11-12,{B}:7"


def test_mysql_errant_transactions_are_those_of_the_own_uuid() -> None:
    executed = f"{A}:1-100,{B}:1-3"
    assert gtid.originated_by(MY, executed, B) == f"{B}:1-3"
    assert gtid.missing(MY, f"{A}:1-100", gtid.originated_by(MY, executed, B)) == f"{B}:1-3"


def test_mariadb_list_keeps_highest_seq_per_domain_and_server() -> None:
    assert gtid.parse_mariadb("0-10-5,0-11-9,1-10-3,0-10-4") == {(0, 10): 5, (0, 11): 9, (1, 10): 3}
    assert gtid.merge_mariadb("0-10-5,0-11-9", "0-11-7", "1-12-2") == "0-10-5,0-11-9,1-12-2"
    assert gtid.position(MARIA, "0-10-5,0-11-9,1-10-3") == "0-11-9,1-10-3"


@pytest.mark.parametrize(
    ("container", "other", "expected"),
    [
        ("0-10-100", "0-10-90", True),
        ("0-10-90", "0-10-100", False),
        # After a switchover the new primary (11) continues the same domain's seq.
        ("0-10-100,0-11-150", "0-10-100", True),
        ("0-10-100,0-11-150", "0-10-100,0-11-120", True),
        # An old primary ahead by seq but diverged: 0-10-105 never reached the new primary.
        ("0-10-100,0-11-103", "0-10-105", False),
        # Split brain at the same seq from two servers is not hidden by the tie.
        ("0-10-5", "0-10-4,0-11-5", False),
        ("0-10-5,1-11-2", "1-11-2", True),
        ("0-10-5", "1-11-2", False),
        ("", "", True),
    ],
)
def test_mariadb_includes_compares_per_domain_and_server(container: str, other: str, expected: bool) -> None:
    assert gtid.includes(MARIA, container, other) is expected


def test_mariadb_missing_names_the_diverged_gtid() -> None:
    assert gtid.missing(MARIA, "0-10-100,0-11-103", "0-10-105") == "0-10-105"


def test_mariadb_origin_is_the_server_id() -> None:
    assert gtid.originated_by(MARIA, "0-10-100,0-11-103,1-11-2", "11") == "0-11-103,1-11-2"
    assert gtid.originated_by(MARIA, "0-10-100", "") == ""


def test_union_and_emptiness_per_flavor() -> None:
    assert gtid.union(MY, [f"{A}:1-3", f"{A}:4-5,{B}:1", ""]) == f"{A}:1-5,{B}:1"
    assert gtid.union(MARIA, ["0-10-3", "0-10-5,0-11-1"]) == "0-10-5,0-11-1"
    assert gtid.is_empty(MY, "") and gtid.is_empty(MARIA, " ")
    assert not gtid.is_empty(MARIA, "0-10-1")


def test_transaction_count_ranks_comparable_sets() -> None:
    assert gtid.transaction_count(MY, f"{A}:1-10:20,{B}:1-2") == 13
    assert gtid.transaction_count(MARIA, "0-10-5,0-11-9,1-10-3") == 12


@pytest.mark.parametrize("text", [f"{A}", f"{A}:5-3"])
def test_mysql_rejects_garbage(text: str) -> None:
    with pytest.raises(gtid.GtidParseError):
        gtid.parse_mysql(text)


def test_mariadb_rejects_garbage() -> None:
    with pytest.raises(gtid.GtidParseError):
        gtid.parse_mariadb("0-10")

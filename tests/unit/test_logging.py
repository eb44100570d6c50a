"""JSON logs: one object a line, and lines from the SQL layer name their cluster too."""

from __future__ import annotations

import io
import json
import logging

import kopf

from mysql_operator import logcontext


def test_json_lines_carry_the_bound_cluster() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        kopf._core.actions.loggers.make_formatter(log_format=kopf.LogFormat.JSON, log_refkey="object")
    )
    handler.addFilter(logcontext.ObjectRefFilter())
    log = logging.getLogger("mysql_operator.topology.reconcile.test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logcontext.bound("shop", "shop-db"):
            log.info("promoted instance 1")
        log.info("not about a cluster")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "promoted instance 1"
    assert first["object"]["namespace"] == "shop" and first["object"]["name"] == "shop-db"
    assert first["object"]["kind"] == "MysqlCluster"
    assert "object" not in second

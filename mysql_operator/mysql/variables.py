"""Which my.cnf keys a running server takes without a restart, per flavor, and applying them live.

A key listed here is applied with SET GLOBAL (MariaDB) or SET PERSIST (MySQL) on every instance and
does not change the pod template's config hash; any other key rolls the pods. The lists are kept
short on purpose: only variables that are dynamic, global, and read back exactly as written (no
rounding such as innodb_buffer_pool_size's chunk multiples).
"""

from __future__ import annotations

from collections.abc import Mapping

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import Dialect, same_value, variable_name
from mysql_operator.mysql.session import Session

_COMMON = frozenset({
    "max_connections",
    "max_connect_errors",
    "max_allowed_packet",
    "wait_timeout",
    "interactive_timeout",
    "net_read_timeout",
    "net_write_timeout",
    "lock_wait_timeout",
    "innodb_lock_wait_timeout",
    "long_query_time",
    "slow_query_log",
    "general_log",
    "log_queries_not_using_indexes",
    "sort_buffer_size",
    "join_buffer_size",
    "read_buffer_size",
    "tmp_table_size",
    "max_heap_table_size",
    "table_open_cache",
    "table_definition_cache",
    "thread_cache_size",
    "innodb_io_capacity",
    "innodb_io_capacity_max",
    "innodb_print_all_deadlocks",
    "binlog_expire_logs_seconds",
})

DYNAMIC_KEYS: dict[Flavor, frozenset[str]] = {
    Flavor.MARIADB: _COMMON | {"log_warnings", "log_slow_verbosity", "max_statement_time"},
    Flavor.MYSQL: _COMMON | {"log_error_verbosity", "max_execution_time"},
}


def is_dynamic(flavor: Flavor, key: str) -> bool:
    """Whether the key is applied live (no restart) for this flavor."""
    return key.replace("-", "_") in DYNAMIC_KEYS[Flavor(flavor)]


def dynamic_config(flavor: Flavor, config: Mapping[str, str]) -> dict[str, str]:
    """The part of mysqlConfig that is applied live."""
    return {k: v for k, v in config.items() if is_dynamic(flavor, k)}


def apply_live(session: Session, dialect: Dialect, wanted: Mapping[str, str]) -> list[str]:
    """Set each key whose running value differs (root session); returns `key=value` of those set."""
    if not wanted:
        return []
    keys = sorted(wanted)
    row = session.query_one(dialect.variables_query(keys)) or {}
    changed = []
    for key in keys:
        if same_value(wanted[key], row.get(variable_name(key))):
            continue
        session.execute(dialect.set_variable(key, wanted[key]))
        changed.append(f"{variable_name(key)}={wanted[key]}")
    return changed

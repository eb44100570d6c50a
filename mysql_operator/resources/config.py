"""The ConfigMap with my.cnf, per flavor: GTID and binlog on, read_only on until the operator decides."""

from __future__ import annotations

import hashlib
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec, ReplicationMode
from mysql_operator.mysql.users import ADMIN_PRIVILEGES
from mysql_operator.mysql.variables import is_dynamic
from mysql_operator.resources.meta import ClusterRef

CONFIG_KEY = "my.cnf"
TLS_DIR = "/etc/mysql/tls"  # the server certificate Secret, mounted read-only (resources/statefulset.py)
# Run once by the image's entrypoint when it initialises an empty data directory, after it created
# root@localhost only and the operator's user (MYSQL_USER/MARIADB_USER, password from the Secret).
INITDB_KEY = "10-mysqlop-admin.sql"

_COMMON = {
    "log_bin": "mysql-bin",
    "relay_log": "relay-bin",
    "binlog_format": "ROW",
    "sync_binlog": "1",
    "innodb_flush_log_at_trx_commit": "1",
    "skip_name_resolve": "ON",
    "character_set_server": "utf8mb4",
    # Every instance starts read-only; only the operator opens the primary for writes.
    "read_only": "ON",
}

_PER_FLAVOR = {
    c.Flavor.MARIADB: {
        "log_slave_updates": "ON",
        "gtid_strict_mode": "ON",
        "binlog_expire_logs_seconds": "604800",
    },
    c.Flavor.MYSQL: {
        "gtid_mode": "ON",
        "enforce_gtid_consistency": "ON",
        "log_replica_updates": "ON",
        "binlog_expire_logs_seconds": "604800",
        # super_read_only is set (and persisted) by the operator: at first start the image's own
        # initialisation must still create its users.
    },
}

# Loaded at start: INSTALL PLUGIN writes mysql.plugin, which a fenced (super_read_only) instance refuses,
# and both a clone's donor (often a replica) and its recipient may be fenced.
_PLUGINS = {
    c.Flavor.MYSQL: ["mysql_clone.so"],
    c.Flavor.MARIADB: [],
}

_SEMI_SYNC_PLUGINS = {
    c.Flavor.MYSQL: ["semisync_source.so", "semisync_replica.so"],
    c.Flavor.MARIADB: [],  # built in
}


def mysqld_options(spec: MysqlClusterSpec) -> list[tuple[str, str]]:
    """The [mysqld] options of the cluster, operator-owned first, then the user's mysqlConfig."""
    options = list({**_COMMON, **_PER_FLAVOR[spec.flavor]}.items())
    options += [("plugin_load_add", plugin) for plugin in _PLUGINS[spec.flavor]]
    if spec.replication.mode == ReplicationMode.SEMI_SYNC:
        options += [("plugin_load_add", plugin) for plugin in _SEMI_SYNC_PLUGINS[spec.flavor]]
    options += tls_options(spec)
    options += sorted(spec.mysql_config.items())
    return options


def tls_options(spec: MysqlClusterSpec) -> list[tuple[str, str]]:
    """The server's certificate files (the same names for MySQL and MariaDB), and whether plaintext
    clients are refused. The files are reloaded live on rotation (mysql/tls.py), never restarted."""
    if not spec.tls.enabled:
        return []
    options = [
        ("ssl_ca", f"{TLS_DIR}/{c.KEY_TLS_CA}"),
        ("ssl_cert", f"{TLS_DIR}/{c.KEY_TLS_CERT}"),
        ("ssl_key", f"{TLS_DIR}/{c.KEY_TLS_KEY}"),
    ]
    if spec.tls.require_secure_transport:
        options.append(("require_secure_transport", "ON"))
    return options


def render_my_cnf(spec: MysqlClusterSpec) -> str:
    """my.cnf text. server_id is not here: it comes from the pod's ordinal (see the StatefulSet)."""
    lines = ["# Managed by mysql-operator; edit spec.mysqlConfig of the MysqlCluster instead.", "[mysqld]"]
    lines += [f"{key} = {value}" for key, value in mysqld_options(spec)]
    return "\n".join(lines) + "\n"


def config_hash(spec: MysqlClusterSpec) -> str:
    """A short digest of my.cnf, stamped on the pod template so that a change rolls the pods.

    Keys applied live (mysql.variables.DYNAMIC_KEYS) are left out: changing them restarts nothing."""
    live = {k for k in spec.mysql_config if is_dynamic(spec.flavor, k)}
    options = [(k, v) for k, v in mysqld_options(spec) if k not in live]
    text = "\n".join(f"{key} = {value}" for key, value in options)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_initdb_sql(spec: MysqlClusterSpec) -> str:
    """The grants of the operator's user, run once at initialisation (no password in it).

    Unlogged: every instance runs it, and a logged write would be an errant GTID transaction."""
    user = f"'{c.OPERATOR_USER}'@'%'"
    lines = [
        "-- Managed by mysql-operator: the operator's own user administers the server; root stays local.",
        "SET SESSION sql_log_bin = 0;",
        *(f"GRANT {grant} ON *.* TO {user} WITH GRANT OPTION;" for grant in ADMIN_PRIVILEGES[spec.flavor]),
        "SET SESSION sql_log_bin = 1;",
    ]
    return "\n".join(lines) + "\n"


def build_config_map(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ref.metadata(c.config_map_name(ref.name)),
        "data": {CONFIG_KEY: render_my_cnf(spec), INITDB_KEY: render_initdb_sql(spec)},
    }

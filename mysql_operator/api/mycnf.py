"""Which `spec.mysqlConfig` keys and values may reach my.cnf, and why the others are refused.

mysqld reads an option under many spellings: `-` and `_` alike, behind the prefixes `loose-`,
`skip-`, `disable-`, `enable-` and `maximum-` (in any combination), and as any unambiguous
abbreviation of its name. A key is therefore compared in its canonical form (folded, prefixes
stripped), and refused when that form names, or abbreviates, a key the operator owns or a key that
would hand a CR editor the server (files, plugins, SQL run at start-up, grant checks, paths).
Values never carry control characters: a newline would start a new my.cnf line (`[client]`,
`!includedir`, `init_file=...`).

The same rules are written twice, in Python (the models) and in CEL (the CRD), from the lists here.
"""

from __future__ import annotations

import re

# Prefixes mysqld's option parser accepts before a name (after folding '-' to '_').
OPTION_PREFIXES = ("loose", "skip", "disable", "enable", "maximum")
_PREFIX_RE = "^((" + "|".join(OPTION_PREFIXES) + ")_)*"

# Keys the operator sets itself: replication, identity, networking, data layout.
OPERATOR_OWNED_KEYS = (
    "server_id",
    "bind_address",
    "port",
    "datadir",
    "socket",
    "pid_file",
    "log_bin",
    "log_slave_updates",
    "log_replica_updates",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_strict_mode",
    "read_only",
    "super_read_only",
    "networking",  # skip_networking
    "user",
    "binlog_format",
    "relay_log",
    "report_host",
    "require_secure_transport",  # spec.tls.requireSecureTransport
)

# Keys refused because they give whoever edits the MysqlCluster more than a tuning knob.
DANGEROUS_KEYS: dict[str, str] = {
    "init_file": "runs an SQL file as root at start-up",
    "init_connect": "runs SQL in every client session",
    "init_slave": "runs SQL in the replication threads",
    "init_replica": "runs SQL in the replication threads",
    "plugin_load": "loads a shared library into mysqld",
    "plugin_load_add": "loads a shared library into mysqld",
    "early_plugin_load": "loads a shared library into mysqld",
    "plugin_dir": "where shared libraries are loaded from",
    "plugin_maturity": "lets mysqld load unstable plugins",
    "grant_tables": "skip_grant_tables turns off every password and privilege check",
    "local_infile": "lets clients make the server read files (LOAD DATA LOCAL)",
    "secure_file_priv": "where the server may read and write files (LOAD DATA, SELECT ... INTO OUTFILE)",
    "symbolic_links": "lets tables live outside the data directory",
    "basedir": "a path: where mysqld finds its own files",
    "tmpdir": "a path the server writes to",
    "character_sets_dir": "a path the server reads from",
    "lc_messages_dir": "a path the server reads from",
    "log_error": "a path the server writes to",
    "general_log_file": "a path the server writes to",
    "slow_query_log_file": "a path the server writes to",
    "log_bin_index": "a path the server writes to",
    "log_bin_basename": "a path the server writes to",
    "relay_log_index": "a path the server writes to",
    "relay_log_info_file": "a path the server writes to",
    "master_info_file": "a path the server writes to",
    "innodb_data_home_dir": "a path the server writes to",
    "innodb_log_group_home_dir": "a path the server writes to",
    "innodb_undo_directory": "a path the server writes to",
    "innodb_temp_tablespaces_dir": "a path the server writes to",
    "innodb_tmpdir": "a path the server writes to",
    "innodb_directories": "paths the server scans for tablespaces",
    "keyring_file_data": "a path the server writes to",
    "mysqlx_socket": "a path the server writes to",
    "debug": "writes a trace file to a path",
    "chroot": "changes the server's root directory",
    "admin_address": "opens a second, administrative listener",
    "ssl_ca": "TLS files are managed by the operator",
    "ssl_capath": "TLS files are managed by the operator",
    "ssl_cert": "TLS files are managed by the operator",
    "ssl_key": "TLS files are managed by the operator",
    "ssl_crl": "TLS files are managed by the operator",
    "ssl_crlpath": "TLS files are managed by the operator",
    "defaults_file": "reads another option file",
    "defaults_extra_file": "reads another option file",
}

# Whole families refused by the start of their canonical name (Galera's wsrep_* run commands and
# load a provider library).
DANGEROUS_PREFIXES = ("wsrep_",)

# Real option names that happen to abbreviate a refused key: exact names win over abbreviations.
EXACT_NAMES = ("general_log", "slow_query_log")

DENIED_KEYS = (*OPERATOR_OWNED_KEYS, *DANGEROUS_KEYS)

KEY_PATTERN = r"^[a-z][a-z0-9_-]*$"
KEY_MAX_LENGTH = 64
VALUE_MAX_LENGTH = 1024
MAX_KEYS = 200
# No control characters (newline, carriage return, NUL, escape, ...): one value, one line.
SAFE_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def fold_key(key: str) -> str:
    """mysqld treats `-` and `_` in option names alike."""
    return key.replace("-", "_")


def canonical_key(key: str) -> str:
    """The option a key names once folded and stripped of every prefix mysqld accepts."""
    folded = fold_key(key)
    prefix = re.match(_PREFIX_RE, folded)
    return folded[prefix.end() if prefix else 0 :]


def refusal(key: str) -> str | None:
    """Why a mysqlConfig key is refused, or None when it may be set."""
    name = canonical_key(key)
    if name in OPERATOR_OWNED_KEYS:
        return f"{key}: the operator owns {name}"
    if name in DANGEROUS_KEYS:
        return f"{key}: {name} {DANGEROUS_KEYS[name]}"
    if any(name.startswith(p) for p in DANGEROUS_PREFIXES):
        return f"{key}: {name} is in a refused family ({', '.join(DANGEROUS_PREFIXES)})"
    if name not in EXACT_NAMES:
        abbreviates = [d for d in DENIED_KEYS if d.startswith(name)]
        if abbreviates:
            return f"{key}: mysqld would read it as an abbreviation of {abbreviates[0]}"
    return None


def _cel_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def cel_key_allowed(var: str) -> str:
    """A CEL expression, true when the mysqlConfig key in variable `var` may be set (as `refusal`)."""
    folded = f"{var}.replace('-', '_')"
    name = f"{folded}.substring({folded}.find('{_PREFIX_RE}').size())"
    return (
        f"!({name} in {_cel_list(EXACT_NAMES)}) ? "
        f"!({_cel_list(list(DENIED_KEYS))}.exists(d, d.startsWith({name})) || "
        f"{_cel_list(DANGEROUS_PREFIXES)}.exists(p, {name}.startsWith(p))) : true"
    )

"""`python -m mysql_operator`: run the operator, print the CRDs / the API reference, or run one backup
command (backup | archive-binlogs | restore | unpack | restore-physical | roll-forward | retention |
list: what the backup Jobs run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from pathlib import Path

from mysql_operator.settings import DEFAULT_JOB_IMAGE, OperatorSettings

# Subcommands of the backup Jobs, handed to mysql_operator.backup.cli as they are.
BACKUP_COMMANDS = (
    "backup", "archive-binlogs", "restore", "unpack", "restore-physical", "roll-forward", "retention", "list"
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mysql-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    crd = sub.add_parser("crd", help="print the CustomResourceDefinitions (YAML)")
    crd.add_argument(
        "plural",
        nargs="?",
        default="mysqlclusters",
        help="which CRD to print: mysqlclusters (default), mysqlbackups, or all",
    )
    crd.add_argument("--out-dir", help="write one file per CRD into this directory instead")
    sub.add_parser("reference", help="print the MysqlCluster reference (Markdown)")
    run = sub.add_parser("run", help="run the operator (in cluster, or with $KUBECONFIG)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--peering", default="mysql-operator", help="kopf peering name (leader election)")
    peering.add_argument("--standalone", action="store_true", help="no peering: a single operator")
    run.add_argument(
        "--priority", type=int, default=None, help="peering priority (default: random, so one replica leads)"
    )
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--metrics", default=None, help="serve /metrics at HOST:PORT, e.g. 0.0.0.0:9090")
    run.add_argument(
        "--log-format", default="plain", choices=["plain", "json"], help="json: one object a line"
    )
    run.add_argument(
        "--job-image", default=DEFAULT_JOB_IMAGE, help="image of the backup and restore Jobs (the operator's)"
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    return OperatorSettings(
        namespaces=list(args.namespace),
        all_namespaces=not args.namespace,
        log_level=args.log_level,
        peering_name=None if args.standalone else args.peering,
        standalone=bool(args.standalone),
        priority=args.priority,
        liveness_endpoint=args.liveness,
        metrics_address=args.metrics,
        log_format=args.log_format,
        job_image=args.job_image,
    )


def run_operator(settings: OperatorSettings) -> None:
    import kopf

    # Importing the handler modules registers them with kopf.
    import mysql_operator.handlers.backup
    import mysql_operator.handlers.cluster
    import mysql_operator.handlers.day2
    import mysql_operator.handlers.restore
    import mysql_operator.handlers.schema
    import mysql_operator.handlers.topology  # noqa: F401
    from mysql_operator import logcontext, metrics
    from mysql_operator.handlers.finalizers import release_timer_finalizers, stop_timers_on_delete
    from mysql_operator.handlers.watch import quiet_watch_handlers

    release_timer_finalizers()  # deleting a cluster never waits for the operator (handlers/finalizers.py)
    stop_timers_on_delete()  # ... and its timers stop when it is gone

    if settings.log_format == "json":
        # kopf's JSON lines carry the object's namespace and name under "object" on every line about it.
        kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="object")
    else:
        kopf.configure(log_format=kopf.LogFormat.FULL)
    logging.getLogger().setLevel(settings.log_level)
    logcontext.install()
    quiet_watch_handlers()  # no line per watch event (handlers/watch.py)
    if settings.metrics_address:
        host, _, port = settings.metrics_address.rpartition(":")
        metrics.serve(host or "0.0.0.0", int(port))
    asyncio.run(
        kopf.operator(
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
            priority=settings.priority if settings.priority is not None else secrets.randbelow(2**31 - 1) + 1,
            peering_name=settings.peering_name,
            liveness_endpoint=settings.liveness_endpoint,
            memo=kopf.Memo(settings=settings),
        )
    )


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in BACKUP_COMMANDS:
        # What the backup, restore and binlog Jobs run (mysql_operator.backup.cli has the options).
        from mysql_operator.backup.cli import main as backup_main

        return backup_main(words)
    args = _parse(words)
    if args.command == "crd":
        from mysql_operator.api.crd import crd_files, render_crds

        files = crd_files()
        if args.out_dir:
            for name, text in files.items():
                Path(args.out_dir, name).write_text(text)
        elif args.plural == "all":
            sys.stdout.write(render_crds())
        elif f"{args.plural}.yaml" in files:
            sys.stdout.write(files[f"{args.plural}.yaml"])
        else:
            print(f"no CRD {args.plural!r}; one of: {', '.join(n[:-5] for n in files)}, all", file=sys.stderr)
            return 2
    elif args.command == "reference":
        from mysql_operator.api.reference import render_reference

        sys.stdout.write(render_reference())
    else:
        run_operator(settings_from_args(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`kubectl mysql ...`: day-2 operations in one command, with the user's kubeconfig and RBAC only.

Installed as the console script `kubectl-mysql`, so kubectl finds it as the `mysql` plugin. Every
command reads and writes ordinary API objects (the MysqlCluster's spec, annotations, MysqlBackups,
Secrets) as the user; the operator does the work. `connect` runs the flavor's own client (`mysql`,
`mariadb`) with the password in an option file passed through a pipe (/dev/fd/N): never on its
command line, never in MYSQL_PWD, never on disk.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mysql_operator import conventions as c
from mysql_operator.backup.commands import Instance, Tools, defaults_text
from mysql_operator.mysql.session import Login
from mysql_operator.plugin.render import (
    FENCED_ANNOTATION,
    fence_annotation,
    render_status,
    restore_manifest,
    switchover_target,
)

GROUP, VERSION = c.API_GROUP, c.API_VERSION


class PluginError(Exception):
    """Something the user should read, printed without a traceback."""


class Api:
    """The few reads and writes the plugin needs, as the kubeconfig's user."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        self.objects = client.CustomObjectsApi()
        self.core = client.CoreV1Api()
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            active = next((ctx for ctx in contexts if ctx["name"] == context), active)
        self.default_namespace = str((active or {}).get("context", {}).get("namespace") or "default")

    def cluster(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get(c.PLURAL, namespace, name, f"MysqlCluster {namespace}/{name}")

    def _get(self, plural: str, namespace: str, name: str, what: str) -> dict[str, Any]:
        try:
            body = cast(
                dict[str, Any],
                self.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name),
            )
        except ApiException as error:
            raise PluginError(f"{what}: {error.status} {error.reason}") from None
        return body

    def backup(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get("mysqlbackups", namespace, name, f"MysqlBackup {namespace}/{name}")

    def patch_cluster(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:  # a dict body goes as a JSON merge patch
            self.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, c.PLURAL, name, patch)
        except ApiException as error:
            raise PluginError(
                f"patch MysqlCluster {namespace}/{name}: {error.status} {error.reason}"
            ) from None

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            created = cast(
                dict[str, Any],
                self.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body),
            )
        except ApiException as error:
            raise PluginError(f"create {body.get('kind')}: {error.status} {_message(error)}") from None
        return created

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            raise PluginError(f"Secret {namespace}/{name}: {error.status} {error.reason}") from None
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    def pod_ip(self, namespace: str, name: str) -> str:
        try:
            pod = self.core.read_namespaced_pod(name, namespace)
        except ApiException as error:
            raise PluginError(f"Pod {namespace}/{name}: {error.status} {error.reason}") from None
        if not pod.status or not pod.status.pod_ip:
            raise PluginError(f"Pod {namespace}/{name} has no IP")
        return str(pod.status.pod_ip)


def _message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def _wait(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    raise PluginError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- commands ------------------------------------------------------------------------------------------


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    body = api.cluster(args.namespace, args.cluster)
    if args.output == "json":
        print(json.dumps(body.get("status") or {}, indent=2))
    else:
        sys.stdout.write(render_status(body))
    return 0


def cmd_switchover(api: Api, args: argparse.Namespace) -> int:
    body = api.cluster(args.namespace, args.cluster)
    try:
        target = switchover_target(body, args.to)
    except ValueError as error:
        raise PluginError(str(error)) from None
    pod = c.pod_name(args.cluster, target)
    api.patch_cluster(args.namespace, args.cluster, {"spec": {"replication": {"switchoverTo": target}}})
    print(f"switching over {args.namespace}/{args.cluster} to {pod} (spec.replication.switchoverTo={target})")
    if args.wait:
        _wait(
            f"{pod} to become primary",
            args.timeout,
            lambda: (api.cluster(args.namespace, args.cluster).get("status") or {}).get("primary") == pod,
        )
        print(f"{pod} is the primary")
    return 0


def _user_login(api: Api, namespace: str, cluster: dict[str, Any], user: str | None) -> tuple[str, str]:
    """(user, password): the operator's user by default (root is local to its pod: it answers only
    `kubectl exec`), the application user, or a MysqlUser's."""
    name = cluster["metadata"]["name"]
    status = cluster.get("status") or {}
    secret_name = (
        status.get("credentialsSecret")
        or (cluster.get("spec") or {}).get("credentials", {}).get("secretName")
        or c.credentials_secret_name(name)
    )
    data = api.secret(namespace, secret_name)
    if user in (None, c.OPERATOR_USER):
        return c.OPERATOR_USER, data.get(c.KEY_OPERATOR_PASSWORD, "")
    if user == c.ROOT_USER:
        raise PluginError(
            f"{c.ROOT_USER} logs in from inside its pod only (kubectl exec <pod> -c mysqld -- mysql "
            f"-u{c.ROOT_USER} -p); use the default {c.OPERATOR_USER}, the application user or a MysqlUser"
        )
    if user == data.get(c.KEY_APP_USER):
        return str(user), data.get(c.KEY_APP_PASSWORD, "")
    try:
        listed = cast(
            dict[str, Any], api.objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "mysqlusers")
        )
        users = listed["items"]
    except ApiException as error:
        raise PluginError(f"list MysqlUsers: {error.status} {error.reason}") from None
    for item in users:
        spec = item.get("spec") or {}
        if spec.get("cluster") == name and spec.get("user") == user:
            ref = spec.get("passwordSecretRef") or {}
            return str(user), api.secret(namespace, str(ref.get("name"))).get(str(ref.get("key")), "")
    raise PluginError(f"no user {user!r} in {secret_name} nor a MysqlUser of cluster {name}")


def cmd_credentials(api: Api, args: argparse.Namespace) -> int:
    cluster = api.cluster(args.namespace, args.cluster)
    user, password = _user_login(api, args.namespace, cluster, args.user)
    if not password:
        raise PluginError(f"no password for {user}")
    print(f"user: {user}\npassword: {password}")
    return 0


def connect_target(cluster: dict[str, Any], replica: bool) -> str:
    """The pod to connect to: the primary, or (--replica) the ready replica with the least lag."""
    status = cluster.get("status") or {}
    if not replica:
        if not status.get("primary"):
            raise PluginError("the cluster has no primary")
        return str(status["primary"])
    replicas = [i for i in status.get("instances") or [] if i.get("role") == "replica" and i.get("ready")]
    if not replicas:
        raise PluginError("the cluster has no ready replica")
    return str(min(replicas, key=lambda i: float(i.get("lagSeconds") or 0.0))["name"])


def client_argv(client_binary: str, option_fd: int, extra: Sequence[str]) -> list[str]:
    """The client's argv: the option file first (both clients require it first), then the user's."""
    return [client_binary, f"--defaults-extra-file=/dev/fd/{option_fd}", *extra]


def cmd_connect(api: Api, args: argparse.Namespace) -> int:
    cluster = api.cluster(args.namespace, args.cluster)
    flavor = c.Flavor((cluster.get("spec") or {}).get("flavor", "mysql"))
    pod = connect_target(cluster, args.replica)
    host = args.host or api.pod_ip(args.namespace, pod)
    user, password = _user_login(api, args.namespace, cluster, args.user)
    binary = args.client or Tools.for_flavor(flavor).client
    if not args.client and shutil.which(binary) is None:
        # On a workstation the image's tool directory is absent: the flavor's client on PATH.
        binary = shutil.which(os.path.basename(binary)) or binary
    if shutil.which(binary) is None:
        raise PluginError(f"client {binary!r} not found (install it, or pass --client PATH)")
    text = defaults_text(Instance(host=host, login=Login(user, password), flavor=flavor, port=args.port))
    # The option file lives in a pipe the client reads once: nothing on disk, argv or environment.
    read_end, write_end = os.pipe()
    os.write(write_end, text.encode())
    os.close(write_end)
    os.set_inheritable(read_end, True)
    extra = list(args.args)
    print(f"connecting to {pod} ({host}:{args.port}) as {user}", file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if k != "MYSQL_PWD"}
    os.execvpe(binary, client_argv(binary, read_end, extra), env)
    return 0  # not reached


def cmd_backup(api: Api, args: argparse.Namespace) -> int:
    api.cluster(args.namespace, args.cluster)  # a clear error when it does not exist
    name = args.name or f"{args.cluster[:200]}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MysqlBackup",
        "metadata": {"name": name, "namespace": args.namespace},
        "spec": {"cluster": args.cluster},
    }
    api.create("mysqlbackups", args.namespace, body)
    print(f"MysqlBackup {args.namespace}/{name} created")
    if args.wait:
        phase = _wait(
            f"MysqlBackup {name} to finish",
            args.timeout,
            lambda: (
                (api.backup(args.namespace, name).get("status") or {}).get("phase") in ("Completed", "Failed")
                and api.backup(args.namespace, name)["status"]["phase"]
            ),
        )
        status = api.backup(args.namespace, name).get("status") or {}
        print(f"{phase}: {status.get('location') or status.get('message') or ''}")
        return 0 if phase == "Completed" else 1
    return 0


def cmd_restore(api: Api, args: argparse.Namespace) -> int:
    backup = api.backup(args.namespace, args.backup)
    source_name = (backup.get("spec") or {}).get("cluster")
    try:
        source = api.cluster(args.namespace, str(source_name)) if source_name else None
    except PluginError:
        source = None  # the cluster it came from is gone: a default-shaped cluster
    manifest = restore_manifest(backup, source, args.to, args.point_in_time)
    if not args.apply:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
        return 0
    api.create(c.PLURAL, args.namespace, manifest)
    print(f"MysqlCluster {args.namespace}/{args.to} created from MysqlBackup {args.backup}")
    return 0


def cmd_fence(api: Api, args: argparse.Namespace) -> int:
    cluster_name = args.instance.rsplit("-", 1)[0]
    cluster = api.cluster(args.namespace, cluster_name)
    value = fence_annotation(cluster.get("metadata") or {}, args.instance, args.command == "fence")
    api.patch_cluster(args.namespace, cluster_name, {"metadata": {"annotations": {FENCED_ANNOTATION: value}}})
    print(f"{args.instance} {args.command}d ({FENCED_ANNOTATION}={value or ''})")
    return 0


def cmd_maintenance(api: Api, args: argparse.Namespace) -> int:
    on = args.state == "on"
    api.cluster(args.namespace, args.cluster)
    api.patch_cluster(args.namespace, args.cluster, {"spec": {"suspend": on}})
    if on:
        print(
            f"{args.namespace}/{args.cluster}: maintenance on (spec.suspend=true): the operator changes "
            "nothing, failover included, until `maintenance off`"
        )
    else:
        print(f"{args.namespace}/{args.cluster}: maintenance off (spec.suspend=false): the operator resumes")
    if args.wait:
        wanted = "Suspended" if on else None
        _wait(
            "the operator to acknowledge",
            args.timeout,
            lambda: (
                _suspended_condition(api.cluster(args.namespace, args.cluster))
                == ("True" if wanted else "False")
            ),
        )
    return 0


def _suspended_condition(cluster: dict[str, Any]) -> str | None:
    for cond in (cluster.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Suspended":
            return str(cond.get("status"))
    return None


# ---- command line ------------------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kubectl mysql",
        description=__doc__.split("\n\n")[0],
        epilog="connect: arguments after -- go to the client, e.g. connect shop-db -- -e 'SELECT 1'",
    )
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's)")
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    sub = parser.add_subparsers(dest="command", required=True)

    status = sub.add_parser("status", help="topology, lag, GTID, conditions and role changes")
    status.add_argument("cluster")
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")

    switchover = sub.add_parser("switchover", help="move the primary to another instance, losing no write")
    switchover.add_argument("cluster")
    switchover.add_argument(
        "--to", type=int, default=None, help="ordinal (default: the least lagging replica)"
    )
    switchover.add_argument("--no-wait", dest="wait", action="store_false")
    switchover.add_argument("--timeout", type=float, default=180.0)

    credentials = sub.add_parser("credentials", help="print a user's name and password")
    credentials.add_argument("cluster")
    credentials.add_argument(
        "--user", default=None, help=f"{c.OPERATOR_USER} (default), the application user, or a MysqlUser's"
    )

    connect = sub.add_parser("connect", help="run the mysql/mariadb client against the cluster")
    connect.add_argument("cluster")
    connect.add_argument("--replica", action="store_true", help="a ready replica instead of the primary")
    connect.add_argument(
        "--user", default=None, help=f"{c.OPERATOR_USER} (default), the application user, or a MysqlUser's"
    )
    connect.add_argument(
        "--host", default=None, help="address to dial (default: the pod's IP), e.g. 127.0.0.1"
    )
    connect.add_argument("--port", type=int, default=c.MYSQL_PORT)
    connect.add_argument(
        "--client", default=None, help="client binary (default: mysql or mariadb per flavor)"
    )

    backup = sub.add_parser("backup", help="take a backup now (a MysqlBackup)")
    backup.add_argument("cluster")
    backup.add_argument("--name", default=None)
    backup.add_argument("--wait", action="store_true")
    backup.add_argument("--timeout", type=float, default=600.0)

    restore = sub.add_parser("restore", help="a new cluster from a backup: print it, or --apply")
    restore.add_argument("backup", help="MysqlBackup name")
    restore.add_argument("--to", required=True, help="name of the new MysqlCluster")
    restore.add_argument("--point-in-time", default=None, help="RFC 3339 time to roll forward to")
    restore.add_argument("--apply", action="store_true", help="create it instead of printing it")

    for verb, text in (("fence", "mark an instance fenced"), ("unfence", "clear an instance's fence")):
        fence = sub.add_parser(verb, help=text)
        fence.add_argument("instance", help="pod name, e.g. shop-db-1")

    maintenance = sub.add_parser(
        "maintenance", help="on: spec.suspend=true (the operator changes nothing); off"
    )
    maintenance.add_argument("state", choices=["on", "off"])
    maintenance.add_argument("cluster")
    maintenance.add_argument("--wait", action="store_true", help="until the operator reports it")
    maintenance.add_argument("--timeout", type=float, default=60.0)
    words = list(argv)
    # Everything after `--` goes to the client as it is (e.g. -e 'SELECT 1'), never to our parser.
    split = words.index("--") if "--" in words else len(words)
    args = parser.parse_args(words[:split])
    args.args = words[split + 1 :]
    return args


COMMANDS = {
    "status": cmd_status,
    "switchover": cmd_switchover,
    "credentials": cmd_credentials,
    "connect": cmd_connect,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "fence": cmd_fence,
    "unfence": cmd_fence,
    "maintenance": cmd_maintenance,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `kubectl-mysql`."""
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        api = Api(args.kubeconfig, args.context)
        args.namespace = args.namespace or api.default_namespace
        return COMMANDS[args.command](api, args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except config.ConfigException as error:
        print(f"error: kubeconfig: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

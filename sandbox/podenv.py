"""What a container sees, resolved as kubelet would: its environment (with `$(VAR)` expansion,
downward API, Secret and ConfigMap references) and its volumes (as local directories)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.kube import Kube

Obj = dict[str, Any]


class ContainerConfigError(Exception):
    """The container cannot be configured yet (kubelet's CreateContainerConfigError)."""


class VolumeNotReady(Exception):
    """A volume cannot be set up yet (e.g. its PVC is not bound): the pod stays ContainerCreating."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubelet's `$(VAR)` expansion: `$$` is a literal `$`, unknown `$(NAME)` stays as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "$" and i + 1 < n:
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    out.append(text[i:])
                    break
                name = text[i + 2:end]
                out.append(env[name] if name in env else text[i:end + 1])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


@dataclass
class PodFacts:
    """The pod facts the downward API can expose, fixed when the agent sets the pod up."""

    pod: Obj
    pod_ip: str
    host_ip: str


def container_env(api: Kube, facts: PodFacts, container: Obj) -> dict[str, str]:
    """The container's environment, in kubelet's order: envFrom, then env (each may use earlier ones)."""
    namespace = facts.pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = _config_map_data(api, namespace, ref["name"], bool(ref.get("optional")))
        else:
            ref = source["secretRef"]
            data = _secret_data(api, namespace, ref["name"], bool(ref.get("optional")))
        for key, value in (data or {}).items():
            env[prefix + key] = value
    for var in container.get("env") or []:
        if "valueFrom" in var:
            value = _value_from(api, facts, container, var["valueFrom"])
            if value is None:
                continue
            env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value") or "", env)
    return env


def expanded_command(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """command and args with `$(VAR)` expanded from the container's env."""
    command = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    return command, args


def _value_from(api: Kube, facts: PodFacts, container: Obj, source: Obj) -> str | None:
    namespace = facts.pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field_value(facts, source["fieldRef"]["fieldPath"])
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        data = _secret_data(api, namespace, ref["name"], bool(ref.get("optional")))
        return _key(data, ref, "secret")
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        data = _config_map_data(api, namespace, ref["name"], bool(ref.get("optional")))
        return _key(data, ref, "configmap")
    if "resourceFieldRef" in source:
        return _resource_value(container, source["resourceFieldRef"])
    raise ContainerConfigError(f"unsupported env source {sorted(source)}")


def field_value(facts: PodFacts, path: str) -> str:
    """The downward API value of one fieldPath."""
    meta, spec = facts.pod["metadata"], facts.pod["spec"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path])


def _resource_value(container: Obj, ref: Obj) -> str:
    resource = ref["resource"]  # e.g. limits.cpu, requests.memory
    kind, _, name = resource.partition(".")
    quantity = ((container.get("resources") or {}).get(kind) or {}).get(name)
    defaults = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi"}
    value = parse_quantity(quantity or defaults.get(name, "0"))
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    return str(math.ceil(value / divisor))


def parse_quantity(text: str) -> float:
    """A Kubernetes resource quantity (`500m`, `2`, `1Gi`, `128M`) as a number."""
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text).strip())
    if not match or match.group(2) not in {"", *suffixes}:
        raise ContainerConfigError(f"cannot parse quantity {text!r}")
    return float(match.group(1)) * suffixes.get(match.group(2), 1)


def _key(data: Mapping[str, str] | None, ref: Obj, kind: str) -> str | None:
    if data is None:
        return None  # optional object absent
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in {kind.capitalize()} {ref["name"]}')
    return data[ref["key"]]


def _secret_data(api: Kube, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
    secret = api.get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if secret is None:
        if optional:
            return None
        raise ContainerConfigError(f'secret "{name}" not found')
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _config_map_data(api: Kube, namespace: str, name: str, optional: bool) -> dict[str, str] | None:
    config_map = api.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    if config_map is None:
        if optional:
            return None
        raise ContainerConfigError(f'configmap "{name}" not found')
    return dict(config_map.get("data") or {})


# ---- volumes ------------------------------------------------------------------------------------------


def pod_volumes(api: Kube, facts: PodFacts, pod_dir: Path) -> dict[str, Path]:
    """Each pod volume as a local directory: PVCs -> their PV's directory (persistent); ConfigMaps,
    Secrets, downward API and projected volumes written (anew) under pod_dir; emptyDir under pod_dir."""
    namespace = facts.pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in facts.pod["spec"].get("volumes") or []:
        name = volume["name"]
        local = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            paths[name] = _claim_path(api, namespace, volume["persistentVolumeClaim"]["claimName"])
        elif "hostPath" in volume:
            paths[name] = Path(volume["hostPath"]["path"])
        elif "configMap" in volume:
            src = volume["configMap"]
            data = _config_map_data(api, namespace, src["name"], bool(src.get("optional")))
            _write_files(local, data or {}, src.get("items"), 0o644)
            paths[name] = local
        elif "secret" in volume:
            src = volume["secret"]
            data = _secret_data(api, namespace, src["secretName"], bool(src.get("optional")))
            _write_files(local, data or {}, src.get("items"), 0o600)
            paths[name] = local
        elif "downwardAPI" in volume:
            items = volume["downwardAPI"].get("items") or []
            data = {i["path"]: field_value(facts, i["fieldRef"]["fieldPath"])
                    for i in items if "fieldRef" in i}
            _write_files(local, data, None, 0o644)
            paths[name] = local
        elif "projected" in volume:
            _write_projected(api, facts, local, volume["projected"])
            paths[name] = local
        else:  # emptyDir and anything we do not model: a private directory
            local.mkdir(parents=True, exist_ok=True)
            paths[name] = local
    return paths


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> dict[str, Path]:
    """mountPath -> local path for each of the container's volumeMounts (subPath honoured)."""
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        base = volumes.get(mount["name"])
        if base is None:
            raise ContainerConfigError(f'volume "{mount["name"]}" not found in the pod')
        path = base / mount["subPath"] if mount.get("subPath") else base
        mounts[mount["mountPath"].rstrip("/") or "/"] = path
    return mounts


def _claim_path(api: Kube, namespace: str, claim: str) -> Path:
    pvc = api.get_or_none(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    if pvc is None:
        raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
    volume_name = pvc["spec"].get("volumeName")
    if not volume_name or (pvc.get("status") or {}).get("phase") != "Bound":
        raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound yet')
    pv = api.get(f"/api/v1/persistentvolumes/{volume_name}")
    source = pv["spec"].get("hostPath") or pv["spec"].get("local")
    if source is None:
        raise ContainerConfigError(f"persistentvolume {volume_name} has no local path")
    path = Path(source["path"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_projected(api: Kube, facts: PodFacts, local: Path, projected: Obj) -> None:
    namespace = facts.pod["metadata"]["namespace"]
    data: dict[str, str] = {}
    for source in projected.get("sources") or []:
        if "configMap" in source:
            src = source["configMap"]
            found = _config_map_data(api, namespace, src["name"], bool(src.get("optional"))) or {}
            data.update(_select(found, src.get("items")))
        elif "secret" in source:
            src = source["secret"]
            found = _secret_data(api, namespace, src["name"], bool(src.get("optional"))) or {}
            data.update(_select(found, src.get("items")))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    data[item["path"]] = field_value(facts, item["fieldRef"]["fieldPath"])
        # serviceAccountToken: not written; processes get a kubeconfig from the agent instead.
    _write_files(local, data, None, 0o644)


def _select(data: Mapping[str, str], items: list[Obj] | None) -> dict[str, str]:
    if not items:
        return dict(data)
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _write_files(directory: Path, data: Mapping[str, str], items: list[Obj] | None, mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = _select(data, items)
    for old in directory.rglob("*"):
        if old.is_file() and str(old.relative_to(directory)) not in wanted:
            old.unlink()
    for rel, text in wanted.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:  # a refresh rewrites only what changed
            path.write_text(text)
        path.chmod(mode)

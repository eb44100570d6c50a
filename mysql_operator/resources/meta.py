"""The identity of a MysqlCluster that every builder stamps on what it builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mysql_operator import conventions as c


@dataclass(frozen=True)
class ClusterRef:
    """Name, namespace and uid of the MysqlCluster that owns the objects being built."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{c.API_GROUP}/{c.API_VERSION}",
            "kind": c.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(
        self, name: str, component: str = "database", annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Metadata of an owned object: name, namespace, standard labels and the owner reference."""
        meta: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": c.common_labels(self.name, component),
            "ownerReferences": [self.owner_reference()],
        }
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

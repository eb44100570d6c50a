"""The base of every API model: camelCase on the wire, CEL rules, nested defaults that reach the CRD.

Its own module so that `models` (MysqlCluster) and `backup` (MysqlBackup, backup and restoreFrom
sections) can both build on it without importing each other in a circle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict


def cel(rule: str, message: str, **extra: str) -> JsonDict:
    """One CEL rule for `x-kubernetes-validations`."""
    return {"rule": rule, "message": message, **extra}


class _Model(BaseModel):
    """Camel-case JSON on the wire, snake_case in Python; unknown fields are rejected."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        alias_generator=lambda name: re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name),
        use_enum_values=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it goes to the API server (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def nested(factory: Callable[[], _Model], **kwargs: Any) -> Any:
    """A nested object field whose defaults also go into the CRD, so the apiserver fills them in."""
    return Field(default_factory=factory, json_schema_extra={"default": factory().wire()}, **kwargs)

"""A local Kubernetes to test on: control plane as local processes plus a node agent (see ARCHITECTURE)."""

from sandbox.instance import Sandbox, SandboxError, ToolFailed

__all__ = ["Sandbox", "SandboxError", "ToolFailed"]

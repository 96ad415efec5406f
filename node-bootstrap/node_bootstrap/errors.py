"""Errors a user can act on: each message names the node or value and the fix."""

from __future__ import annotations


class BootstrapError(RuntimeError):
    """Any failure the CLI reports as one clear sentence (no traceback)."""


class PreflightError(BootstrapError):
    """Something the user must provide first (terraform, credentials, SSH key, tfvars)."""


class InventoryError(BootstrapError):
    """The inventory (terraform output) is missing or malformed."""


class HostKeyError(BootstrapError):
    """The node's SSH host key is unknown or differs from the verified one: never retried."""


class UnreachableError(BootstrapError):
    """The node did not answer SSH within the bounded retries."""


class StepError(BootstrapError):
    """A node step or command exited non-zero."""


class GateError(BootstrapError):
    """A phase gate (nodes Ready, Calico ready) did not pass in time."""

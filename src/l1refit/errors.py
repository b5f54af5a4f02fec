"""Exceptions with enough context (file, offset, branch, key) to act on without a traceback."""

from __future__ import annotations


class L1RefitError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class FormatError(L1RefitError, ValueError):
    """Input data that do not follow the format they claim (corrupt, truncated, wrong magic, missing branch).

    The message always names the file and, where it applies, the byte offset or the tree/branch.
    """

    def __init__(self, path, what: str, *, offset: int | None = None, branch: str | None = None):
        self.path = str(path)
        self.offset = offset
        self.branch = branch
        where = self.path
        if offset is not None:
            where += f" at byte offset {offset}"
        if branch is not None:
            where += f" (branch {branch!r})"
        super().__init__(f"{where}: {what}")


class ConfigError(L1RefitError, ValueError):
    """A configuration value that is valid JSON-schema-wise but unusable (e.g. a glob that matches nothing)."""

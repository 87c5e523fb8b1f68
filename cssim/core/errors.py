"""Exceptions cssim raises for problems in what a user gave it.

Every message is one line that names the file, the field or row, what was
wrong and what is allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations


class CssimError(Exception):
    """Base class for errors caused by user input (not by a bug in cssim).

    ``problems`` lists every problem found, one line each (the message is
    the lines joined); most errors have one.
    """

    @property
    def problems(self) -> list[str]:
        return str(self).splitlines() or [""]

    @classmethod
    def many(cls, lines: list[str]) -> CssimError:
        """One error reporting every line of ``lines`` (each a complete one-line message)."""
        return cls("\n".join(lines))


class ScenarioError(CssimError):
    """A scenario file is missing, unreadable or invalid."""


class DataError(CssimError):
    """A data file (customer history, cohort table, curves file) is invalid."""


class PlanError(CssimError):
    """A sweep, comparison or planning request cannot be carried out."""


class ModelWarning(UserWarning):
    """The scenario is valid but its forecast would mislead (:mod:`cssim.checks`); ``--strict`` makes it an error."""

"""The contract every cssim result honours, so that one learned is all learned (statsmodels' Results, lifelines' fitters).

- ``summary()`` returns a :class:`Summary`: a DataFrame (index, columns, ``.loc``) that prints as the text
  summary the command line shows;
- tables are methods returning DataFrames; :meth:`Results.tables` names those :meth:`Results.to_folder` writes;
- ``plot_*(..., ax=None)`` draw on ``ax`` (a new Axes if None) and return the Axes;
- ``to_folder(out, force=False, format="csv")`` writes the tables, ``summary.txt`` and a manifest built by
  :func:`cssim.core.output.build_manifest`, atomically, through :func:`cssim.core.output.write_tables`;
- ``level`` is the interval level (0.9: 90 % intervals), the one name for it;
- ``_repr_html_`` shows the summary table in a notebook.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import ClassVar

import pandas as pd

from .output import write_tables

__all__ = ["Results", "Summary"]


class Summary(pd.DataFrame):
    """A summary table that prints as the text summary (``str(summary)``), and is a DataFrame for everything else.

    Derived frames (slices, ``reset_index``, arithmetic) are plain DataFrames: only the summary itself carries
    the text.
    """

    _metadata: ClassVar[list[str]] = ["text"]

    def __init__(self, data=None, *args, text: str | None = None, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.text = text

    @property
    def _constructor(self):
        return pd.DataFrame

    def __str__(self) -> str:
        return self.text if self.text is not None else pd.DataFrame(self).to_string()

    def __repr__(self) -> str:
        return self.__str__()


class Results:
    """Mixin of the results contract; a result class states its ``KIND``, ``summary()``, ``tables()`` and ``manifest``.

    ``level`` defaults to 0.9; classes with their own interval level set it in ``__init__`` or as a field.
    """

    KIND: ClassVar[str] = "results"
    level: float = 0.9

    def summary(self) -> Summary:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables :meth:`to_folder` writes, by file stem (``{"kpis": ...}`` → ``kpis.csv``)."""
        raise NotImplementedError  # pragma: no cover - every result defines it

    def files(self) -> dict[str, str]:
        """Further text files :meth:`to_folder` writes (name → content); none by default."""
        return {}

    def write_figures(self, folder: Path) -> None:
        """Figures :meth:`to_folder` saves beside the tables; none by default."""

    def to_folder(self, out, force: bool = False, format: str = "csv", files: dict[str, str] | None = None,
                  **options) -> Path:
        """Write the tables (``format`` csv or parquet), ``summary.txt``, further ``files`` and ``manifest.json``
        atomically to ``out`` (an existing folder only with ``force``, and only if cssim wrote all of it).

        ``options`` go to :meth:`tables` and :meth:`summary` (a comparison's ``scope``, say).
        """
        more = {**self.files(), **(files or {})}
        summary = more.pop("summary.txt", None) or str(self.summary(**options))
        return write_tables(out, lambda: self.tables(**options), summary=summary, manifest=self.manifest, force=force, format=format,
                            files=more, extra=self.write_figures)

    def _repr_html_(self) -> str:
        title = html.escape(f"{type(self).__name__} ({self.KIND.replace('_', ' ')})")
        return f"<div><p><b>{title}</b></p>{self.summary().to_html()}</div>"

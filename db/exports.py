"""CSV files that leave the system: every export is written through here.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``,
``-``, ``@`` (or a tab, CR, LF, NUL, or their full-width forms) as a
formula, so a name typed as ``=HYPERLINK("http://evil", "click")`` would
become a live link or worse (OWASP: CSV injection). Such a text cell gets a
leading ``'``, which spreadsheets read as "this is text". Numbers stay
numbers: numeric values are never touched, and a text cell that is only a
signed number (``-12``, ``-1 234.50``, ``+3.5 %``) cannot call anything.

The grids' own client-side export does the same in
``assets/dashAgGridFunctions.js`` (``csvSafeCell``); a test holds the two
to one table of cases.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

FORMULA_STARTS = frozenset("=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20")
# digits with separators (thin/no-break spaces too), an exponent, a percent
# sign: no letters, brackets, operators or pipes, so no formula can hide in it
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?=[^0-9]*[0-9])[0-9.,\u00a0\u202f ]+(?:[eE][+-]?[0-9]+)?(?: ?%)?"
)


def neutralise(value: Any) -> Any:
    """A cell safe to open in a spreadsheet; anything but text is returned as is."""
    if (
        isinstance(value, str)
        and value[:1] in FORMULA_STARTS
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def header_row(columns: Iterable[Any], labels: Mapping[str, str] | None = None,
               translate: Callable[[str], str] | None = None) -> list[str]:
    """An export's column headers: each column's own name (the field names
    scripts read), or, with a ``translate`` from the web layer (the engine
    does not know the reader's language), its label in ``labels`` (marked
    with ``N_``) in the reader's language."""
    if translate is None or labels is None:
        return [str(c) for c in columns]
    return [str(translate(labels.get(str(c), str(c)))) for c in columns]


def frame_to_csv(df: pd.DataFrame, out: io.TextIOBase | None = None, *,
                 labels: Mapping[str, str] | None = None,
                 translate: Callable[[str], str] | None = None,
                 **to_csv: Any) -> str | None:
    """``df.to_csv(index=False)`` with every text cell (and header) neutralised;
    the headers as :func:`header_row` makes them.

    Returns the text, or writes to ``out`` (and returns None)."""
    safe = df.copy(deep=False)
    for col in safe.columns:
        if pd.api.types.is_object_dtype(safe[col]) or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(neutralise, na_action="ignore")
    safe.columns = [neutralise(c) for c in header_row(safe.columns, labels, translate)]
    to_csv.setdefault("index", False)
    return safe.to_csv(out, **to_csv)


def write_rows(out: io.TextIOBase, rows: Iterable[Sequence[Any]]) -> None:
    """Rows of cells (quoted where needed by :mod:`csv`), each cell neutralised."""
    w = csv.writer(out, lineterminator="\n")
    for row in rows:
        w.writerow([neutralise(v) for v in row])

"""Tables: a CSV file (or a pandas DataFrame) read into typed columns, and written back in the
same schema, column order and spelling of missing values.

Column kinds: ``continuous`` (real numbers), ``integer`` (whole numbers, written without a
decimal point), ``categorical`` (any text; also whole numbers with few distinct values),
``boolean`` (two values such as true/false, yes/no), ``datetime`` (ISO-like dates and
times). Kinds are inferred and can be overridden per column. Missing values (an empty
field, ``?``, ``NA``, ``nan``, ``null`` ...) are kept as a state of their own, never
dropped: :attr:`Table.values` holds NaN (numbers, datetimes as nanoseconds) or None (text)
there, and each column remembers how its file spelled "missing".
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.errors import GanforgeError

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime")
MISSING = ("", "?", "NA", "N/A", "n/a", "na", "nan", "NaN", "NAN", "null", "NULL", "None")
BOOLEAN_PAIRS = ({"true", "false"}, {"yes", "no"}, {"t", "f"}, {"y", "n"})
FEW_INTEGERS = 10  # whole numbers with at most this many distinct values are categories
MAX_CATEGORIES = 500  # more distinct texts than this: an identifier, not a category
MIXED_SHARE = 0.9  # mostly numbers with some text: a data error, not a category


@dataclass
class Column:
    """One column: its name, kind, how the file wrote "missing" (None: never missing), and
    for categorical and boolean columns the categories as written, most frequent first."""

    name: str
    kind: str
    missing: str | None = None
    categories: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Table:
    """Typed columns in file order: ``values[name]`` is float64 (NaN where missing) for
    numbers and datetimes (nanoseconds since 1970), an object array of str/None for text."""

    columns: list[Column]
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.values.values())))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise GanforgeError(f"there is no column {name!r} (columns: {', '.join(self.names)})")

    def rows(self, index: np.ndarray) -> Table:
        return Table(self.columns, {k: v[index] for k, v in self.values.items()})

    def to_frame(self):
        """A pandas DataFrame as the file would read: the file's own spelling of text,
        integers without decimals, datetimes as ISO text, missing as the column's token."""
        import pandas as pd

        return pd.DataFrame({c.name: _as_text(c, self.values[c.name]) for c in self.columns})


def _as_text(column: Column, values: np.ndarray) -> np.ndarray:
    missing = column.missing if column.missing is not None else ""
    if column.kind in ("categorical", "boolean"):
        return np.array([missing if v is None else v for v in values], dtype=object)
    gone = np.isnan(values)
    out = np.empty(len(values), dtype=object)
    if column.kind == "integer":
        out[~gone] = np.round(values[~gone]).astype(np.int64).astype(str)
    elif column.kind == "datetime":
        stamps = values[~gone].astype("int64").astype("datetime64[ns]")
        days = (stamps.astype("datetime64[D]") == stamps).all()  # dates without times
        out[~gone] = np.datetime_as_string(stamps, unit="D" if days else "s")
    else:
        out[~gone] = [repr(float(v)) for v in values[~gone]]
    out[gone] = missing
    return out


def _numbers(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 of each text (NaN where it is not a number) and where it parsed."""
    import pandas as pd

    parsed = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64)
    # inf and 1e400 are text here; so are numbers with leading zeros (codes such as zip
    # 02100, whose zeros the number would lose) and integers a float cannot hold exactly.
    ok = np.isfinite(parsed) & (np.abs(parsed) < 2**53)
    zeros = pd.Series(text).str.match(r"^-?0\d").to_numpy(dtype=bool)
    return np.where(ok & ~zeros, parsed, np.nan), ok & ~zeros


def _datetimes(text: np.ndarray) -> np.ndarray | None:
    """Nanoseconds of each text when every one is a date (ISO-like), else None."""
    import pandas as pd

    if not all(("-" in t or "/" in t) and any(ch.isdigit() for ch in t) for t in text[:50]):
        return None
    try:
        stamps = pd.to_datetime(pd.Series(text), errors="raise", format="mixed")
    except (ValueError, TypeError, OverflowError):
        return None
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return stamps.astype("int64").to_numpy(dtype=np.float64)


def infer_kind(name: str, text: np.ndarray) -> str:
    """The kind of a column from its present (non-missing) values."""
    if len(text) == 0:
        raise GanforgeError(f"column {name!r} has no values (all missing); drop it")
    numbers, parsed = _numbers(text)
    share = parsed.mean()
    if share == 1:
        distinct = np.unique(numbers)
        whole = np.all(distinct == np.round(distinct))
        if whole and len(distinct) <= FEW_INTEGERS:
            return "categorical"
        return "integer" if whole else "continuous"
    if share >= MIXED_SHARE:
        example = text[~parsed][0]
        raise GanforgeError(
            f"column {name!r} mixes numbers and text (e.g. {example!r}); fix the data or "
            f"declare its kind ({name}=categorical)"
        )
    lowered = {t.lower() for t in np.unique(text)}
    if any(lowered == pair for pair in BOOLEAN_PAIRS):
        return "boolean"
    if _datetimes(text) is not None:
        return "datetime"
    return "categorical"


def _read_text(source: str | Path):
    import pandas as pd

    from ganforge.resources import require_memory

    path = Path(source)
    if not path.is_file():
        raise GanforgeError(f"{path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise GanforgeError(f"{path} is empty")
    # pandas holds each field as a Python string: about ten times the file's bytes.
    require_memory(10 * size, f"reading {path} ({size / 2**20:,.0f} MB)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise GanforgeError(
            f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    import csv

    lines = csv.reader(io.StringIO(text))
    header = next(lines, [])
    names = [h.strip() for h in header]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise GanforgeError(f"{path} has an empty or repeated column name in its header")
    for number, row in enumerate(lines, start=2):  # pandas would shift or drop the extras
        if row and len(row) != len(header):
            raise GanforgeError(
                f"{path} is not a readable CSV (line {number} has {len(row)} fields, the "
                f"header {len(header)})"
            )
    try:
        return pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
            skipinitialspace=True, index_col=False, on_bad_lines="error",
        )  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise GanforgeError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None


def read_table(source, kinds: dict[str, str] | None = None) -> Table:
    """A :class:`Table` from a CSV path or a pandas DataFrame; ``kinds`` overrides the
    inferred kind of the named columns."""
    import pandas as pd

    frame = source if isinstance(source, pd.DataFrame) else _read_text(source)
    where = "the table" if isinstance(source, pd.DataFrame) else str(source)
    if frame.shape[1] < 2:
        raise GanforgeError(f"{where} has {frame.shape[1]} column(s); a table needs at least two")
    if len(frame) < 2:
        raise GanforgeError(f"{where} has {len(frame)} row(s) under its header; it needs data")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise GanforgeError(f"{where} repeats a column name")
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if name not in names:
            raise GanforgeError(f"there is no column {name!r} to set the kind of")
        if kind not in KINDS:
            raise GanforgeError(f"column kind {kind!r} is not one of {', '.join(KINDS)}")
    columns, values = [], {}
    for name, raw in zip(names, frame.columns, strict=True):
        text = frame[raw].astype(str).str.strip().to_numpy(dtype=object)
        gone = np.isin(text, MISSING)
        tokens, counts = np.unique(text[gone], return_counts=True)
        missing = str(tokens[counts.argmax()]) if gone.any() else None
        present = text[~gone]
        kind = kinds.get(name) or infer_kind(name, present)
        column = Column(name, kind, missing)
        if kind in ("categorical", "boolean"):
            cats, freq = np.unique(present, return_counts=True)
            if len(cats) > MAX_CATEGORIES:
                raise GanforgeError(
                    f"column {name!r} has {len(cats):,} distinct values in {len(text):,} rows "
                    "(an identifier?); drop it, or declare it continuous if it is a number"
                )
            column.categories = [str(c) for c in cats[np.argsort(-freq, kind="stable")]]
            out = np.where(gone, None, text).astype(object)
        elif kind == "datetime":
            out = np.full(len(text), np.nan)
            stamps = _datetimes(present)
            if stamps is None:
                raise GanforgeError(f"column {name!r} is declared datetime but has non-dates")
            out[~gone] = stamps
        else:
            out = np.full(len(text), np.nan)
            numbers, parsed = _numbers(present)
            if not parsed.all():
                example = present[~parsed][0]
                raise GanforgeError(f"column {name!r} is {kind} but holds {example!r}")
            out[~gone] = numbers
        if (~gone).sum() == 0:
            raise GanforgeError(f"column {name!r} has no values (all missing); drop it")
        columns.append(column)
        values[name] = out
    return Table(columns, values)


def write_table(table: Table, path: str | Path) -> None:
    """The table as CSV, atomically (the file appears whole or not at all)."""
    from ganforge.io.atomic import atomic_write_bytes

    text = table.to_frame().to_csv(index=False, lineterminator="\n")
    atomic_write_bytes(path, text.encode("utf-8"))


def columns_from(raw: list[dict[str, Any]]) -> list[Column]:
    """Columns as stored in a run (``Column.to_dict``)."""
    try:
        return [Column(str(c["name"]), str(c["kind"]), c.get("missing"),
                       [str(x) for x in c.get("categories", [])]) for c in raw]  # fmt: skip
    except (KeyError, TypeError) as err:
        raise GanforgeError(f"a stored table schema is incomplete ({err})") from None

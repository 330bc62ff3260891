"""Output: rich tables on a terminal, tab-separated text otherwise, or one JSON document."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..secret import SecretBytes

__all__ = [
    "Table",
    "progress",
    "cell_text",
    "emit",
    "iso_time",
    "note",
    "print_json",
    "print_lines",
    "print_secret_json",
    "write_secret",
]

_NARROWEST_COLUMN = 10
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class Table:
    """Rows under named columns; the column names are the TSV header."""

    __slots__ = ("columns", "rows", "title")

    def __init__(
        self,
        columns: Sequence[str],
        rows: list[Sequence[object]] | None = None,
        title: str | None = None,
    ) -> None:
        self.columns = columns
        self.rows: list[Sequence[object]] = rows if rows is not None else []
        self.title = title

    def __repr__(self) -> str:
        return f"Table(columns={self.columns!r}, rows={self.rows!r}, title={self.title!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return (self.columns, self.rows, self.title) == (other.columns, other.rows, other.title)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces


def iso_time(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO-8601 UTC (``2024-05-01T12:00:00Z``), or None."""
    if seconds is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cell_text(value: object) -> str:
    """One TSV cell: empty for None, true/false, lists comma-joined; tabs and newlines escaped."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = ",".join(cell_text(item) for item in value)
    else:
        text = str(value)
    return text.translate(_TSV_ESCAPES)


def emit(
    table: Table, document: Mapping[str, Any], *, as_json: bool, out: IO[str] | None = None
) -> None:
    """Print ``document`` as JSON, or ``table`` as a rich table (terminal) or TSV."""
    stream = out if out is not None else sys.stdout
    if as_json:
        print_json(document, out=stream)
    elif stream.isatty():
        _print_rich(table, stream)
    else:
        _print_tsv(table, stream)


def print_json(document: Mapping[str, Any], *, out: IO[str] | None = None) -> None:
    """One JSON document, indented, newline-terminated."""
    import json

    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(document, indent=2) + "\n")
    stream.flush()


def print_lines(lines: Sequence[str], *, out: IO[str] | None = None) -> None:
    """Plain lines (for commands whose output is a list of ids)."""
    stream = out if out is not None else sys.stdout
    for line in lines:
        stream.write(line + "\n")
    stream.flush()


def note(message: str) -> None:
    """One ``keyloader: ...`` line on stderr, beside output meant for stdout."""
    sys.stdout.flush()
    sys.stderr.write(f"keyloader: {message}\n")
    sys.stderr.flush()


@contextmanager
def progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, on a terminal only; yields ``update(done, total)``."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def write_secret(data: SecretBytes, *, newline: bool) -> None:
    """Key material to stdout as bytes (no text copy), then a newline if asked."""
    sys.stdout.flush()
    out = sys.stdout.buffer
    out.write(data.view)
    if newline:
        out.write(b"\n")
    out.flush()


def print_secret_json(document: Mapping[str, Any], *, field: str, text: SecretBytes) -> None:
    """``document`` as JSON with ``field`` set to the ASCII ``text`` (a base64 key).

    JSON needs a ``str``, an immutable copy Python cannot wipe; it lives only
    until the document is written.
    """
    print_json({**document, field: text.bytes().decode("ascii")})


def _print_tsv(table: Table, stream: IO[str]) -> None:
    stream.write("\t".join(table.columns) + "\n")
    for row in table.rows:
        stream.write("\t".join(cell_text(value) for value in row) + "\n")
    stream.flush()


def _print_rich(table: Table, stream: IO[str]) -> None:
    """A table as wide as the terminal allows; too narrow for it, one block per row."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=stream, highlight=False, markup=False, emoji=False)
    cells = [[_terminal_text(value) for value in row] for row in table.rows]
    headers = [column.replace("_", " ") for column in table.columns]
    budget = console.width - 3 * len(headers)  # padding each side, a space between
    if budget < _NARROWEST_COLUMN * len(headers):
        _print_records(console, headers, cells, table.title)
        return
    natural = [
        max([len(word) for word in header.split()] + [len(row[i]) for row in cells])
        for i, header in enumerate(headers)
    ]
    rich_table = RichTable(title=table.title, box=box.SIMPLE_HEAD, show_edge=False)
    for header, min_width in zip(headers, _fair_widths(natural, budget), strict=True):
        # Narrow values keep their width; wide ones (paths, help) wrap. Nothing is cut.
        rich_table.add_column(header, overflow="fold", min_width=min_width)
    for row_cells in cells:
        rich_table.add_row(*(Text(cell) for cell in row_cells))
    console.print(rich_table)


def _print_records(
    console: Any, headers: Sequence[str], cells: Sequence[Sequence[str]], title: str | None
) -> None:
    """One ``name  value`` block per row, for terminals too narrow for the table."""
    from rich.table import Table as RichTable
    from rich.text import Text

    if title:
        console.print(Text(title, style="italic"))
    for number, row_cells in enumerate(cells):
        if number:
            console.print()
        grid = RichTable.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for header, cell in zip(headers, row_cells, strict=True):
            grid.add_row(Text(header), Text(cell))
        console.print(grid)


def _fair_widths(natural: Sequence[int], budget: int) -> list[int]:
    """Minimum column widths within ``budget``: narrow columns whole, the rest share equally."""
    widths = [0] * len(natural)
    remaining = max(budget, 4 * len(natural))
    order = sorted(range(len(natural)), key=lambda i: natural[i])
    for position, index in enumerate(order):
        share = remaining // (len(order) - position)
        widths[index] = max(1, min(natural[index], share))
        remaining -= widths[index]
    return widths


def _terminal_text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_terminal_text(item) for item in value) or "-"
    return str(value)


def summary(document: dict[str, object]) -> None:
    """One row: counts, and lists (comma-joined in TSV, arrays in JSON)."""
    from . import session

    columns = list(document)
    emit(
        Table(columns, [[document[c] for c in columns]]),
        document,
        as_json=session.options().json_output,
    )

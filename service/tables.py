"""The tables of the listing commands (rich), in which an identifier is never cut.

A `whole` column (identifiers: event ids, delivery keys, Message-IDs, addresses, notification
ids; and times) is as wide as its longest value and never wraps, so a value can be pasted into
the next command (`replay show`, `--since`); the other columns wrap (fold) to make room, and
nothing ends in an ellipsis. When the terminal
(80 columns when the output is piped) is too narrow for that, with every other column at least
`MIN_WRAPPED` wide, each row is printed as a block of `column  value` lines instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

MIN_WRAPPED = 8  # narrower, a wrapped column is no longer readable
_PADDING = 2  # rich's default: one space each side of a cell
_BORDER = 1


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    whole: bool = False  # never cut, never wrapped


def _width(value: str) -> int:
    return max((cell_len(line) for line in value.splitlines()), default=0)


def _narrowest(column: Column, values: Sequence[str]) -> int:
    """How narrow a column can get: a whole one not at all, any other to MIN_WRAPPED (or its
    natural width when that is less)."""
    natural = max([_width(value) for value in values] + [_width(column.name), 1])
    return natural if column.whole else min(natural, MIN_WRAPPED)


def fits(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> bool:
    """Whether the table, whole columns whole and the rest wrapped, fits in `width` cells."""
    needed = _BORDER * (len(columns) + 1)
    for index, column in enumerate(columns):
        needed += _narrowest(column, [row[index] for row in rows]) + _PADDING
    return needed <= width


def print_table(
    console: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    show_header: bool = True,
) -> None:
    """`rows` under `title`: a table when it fits, else one block of lines per row."""
    if rows and not fits(columns, rows, console.width):
        print_records(console, title, columns, rows)
        return
    table = Table(title=title, show_header=show_header)
    for index, column in enumerate(columns):
        if column.whole:
            longest = max([_width(row[index]) for row in rows] + [1])
            table.add_column(column.name, no_wrap=True, overflow="fold", min_width=longest)
        else:
            table.add_column(column.name, overflow="fold")
    for row in rows:
        table.add_row(*(Text(value) for value in row))  # values are data, never rich markup
    console.print(table)


def print_records(
    console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    """Each row as `column  value` lines (a value's further lines indented below it), rows
    apart by a blank line; long values run on, unwrapped."""
    console.print(Text(title), soft_wrap=True)
    names = max(cell_len(column.name) for column in columns)
    for row in rows:
        lines = [""]
        for column, value in zip(columns, row, strict=True):
            first, *rest = value.splitlines() or [""]
            lines.append(f"{column.name.ljust(names)}  {first}".rstrip())
            lines.extend(f"{'':{names}}  {line}".rstrip() for line in rest)
        console.print(Text("\n".join(lines)), soft_wrap=True)

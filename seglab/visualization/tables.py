"""The tables seglab's commands print: aligned plain text, or a GitHub markdown table.

``seglab-eval``, ``seglab-data stats``, ``seglab-reproduce`` and ``seglab-compare`` all print
rows of already formatted cells under a header; laying them out in one place keeps their
columns aligned the same way: each column as wide as its widest cell, two spaces between
columns, words to the left and numbers to the right.
"""

from __future__ import annotations

from collections.abc import Sequence

_GAP = "  "


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    footer: Sequence[Sequence[str]] = (),
) -> str:
    """The rows under the header, in aligned columns; ``footer`` rows below a rule of dashes.

    Args:
        header: the column names.
        rows: the cells of each row, one per column, formatted as they are to be shown.
        align: one character a column, ``<`` to align it left and ``>`` to align it right;
            the header is aligned as its column.
        footer: rows that sum up the others (the mean of a column), set apart by a rule as
            wide as the table and aligned with the columns above.
    """
    _check(header, [*rows, *footer], align)
    widths = [max(len(line[i]) for line in [header, *rows, *footer]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        # a left-aligned last column would pad the line with trailing spaces
        return _GAP.join(
            f"{cell:{side}{width}}" for cell, side, width in zip(cells, align, widths, strict=True)
        ).rstrip()

    lines = [line(header), *(line(row) for row in rows)]
    if footer:
        lines.append("-" * (sum(widths) + len(_GAP) * (len(widths) - 1)))
        lines += [line(row) for row in footer]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A GitHub markdown table: right-aligned columns are marked ``---:`` so they render so.

    ``|`` inside a cell is escaped, as it would otherwise split the cell.
    """
    _check(header, rows, align)
    rule = ["---:" if side == ">" else "---" for side in align]
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |"
        for line in [header, rule, *rows]
    )


def _check(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> None:
    """A row or alignment that does not match the header would shift every column after it."""
    if len(align) != len(header) or set(align) - {"<", ">"}:
        raise ValueError(
            f"align={align!r} must give < (left) or > (right) for each of the "
            f"{len(header)} columns {list(header)}"
        )
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"row {list(row)} has {len(row)} cells for the {len(header)} columns {list(header)}"
            )

"""Plain-text and markdown tables: widths, alignment, the footer rule and escaping."""

from __future__ import annotations

import pytest

from seglab.visualization.tables import markdown_table, text_table


def test_columns_are_as_wide_as_their_widest_cell_and_aligned_as_asked() -> None:
    table = text_table(
        ["name", "count", "share"], [["a", "3", "0.50"], ["long name", "12", "0.25"]], "<>>"
    )
    assert table == "\n".join(
        [
            "name       count  share",
            "a              3   0.50",
            "long name     12   0.25",
        ]
    )


def test_a_left_aligned_last_column_leaves_no_trailing_spaces() -> None:
    table = text_table(["metric", "run"], [["0.8", "a/b"], ["0.75", "c"]], "><")
    assert table.splitlines() == ["metric  run", "   0.8  a/b", "  0.75  c"]


def test_footer_rows_sit_below_a_rule_as_wide_as_the_table() -> None:
    table = text_table(
        ["class", "IoU"], [["sky", "0.9000"], ["road", "absent"]], "<>", footer=[["mean", "0.45"]]
    )
    assert table == "\n".join(
        [
            "class     IoU",
            "sky    0.9000",
            "road   absent",
            "-------------",
            "mean     0.45",
        ]
    )


def test_a_wide_footer_cell_widens_its_column() -> None:
    table = text_table(["class", "IoU"], [["sky", "0.9"]], "<>", footer=[["all classes", "0.9"]])
    assert table.splitlines() == [
        "class        IoU",
        "sky          0.9",
        "----------------",
        "all classes  0.9",
    ]


def test_markdown_marks_right_aligned_columns_and_escapes_pipes() -> None:
    table = markdown_table(
        ["decoder", "lr", "mIoU"], [["unet", "0.01", "0.8000"], ["a|b", "0.1", "0.7000"]], "<<>"
    )
    assert table.splitlines() == [
        "| decoder | lr | mIoU |",
        "| --- | --- | ---: |",
        "| unet | 0.01 | 0.8000 |",
        "| a\\|b | 0.1 | 0.7000 |",
    ]


@pytest.mark.parametrize("table", [text_table, markdown_table])
@pytest.mark.parametrize(
    ("rows", "align", "message"),
    [
        ([["a", "1"]], "<", r"align='<' must give < \(left\) or > \(right\) for each of the 2"),
        ([["a", "1"]], "<^", r"align='<\^' must give"),
        ([["a", "1"], ["b"]], "<>", r"row \['b'\] has 1 cells for the 2 columns \['x', 'y'\]"),
    ],
)
def test_a_row_or_alignment_that_does_not_fit_the_header_is_refused(
    table, rows: list[list[str]], align: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        table(["x", "y"], rows, align)


def test_a_footer_row_that_does_not_fit_the_header_is_refused() -> None:
    with pytest.raises(ValueError, match=r"row \['mean'\] has 1 cells"):
        text_table(["x", "y"], [["a", "1"]], "<>", footer=[["mean"]])

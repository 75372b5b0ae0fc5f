"""One formatter per kind of number (noisemod.analysis.formatting), each checked on hand-written strings."""

import math

from noisemod.analysis.formatting import (
    group_mean_std,
    markdown_table,
    mean_std,
    missing,
    number,
    p_value,
    setting,
    signed,
)


def test_a_missing_value_is_a_dash_and_a_result_has_its_digits():
    assert missing(None) and missing(math.nan) and not missing(0.0) and not missing(0)
    assert [number(None), number(math.nan), number(0.12345), number(0.12345, 2), number(7)] == [
        "-",
        "-",
        "0.1235",
        "0.12",
        "7",
    ]


def test_a_setting_is_its_shortest_form_and_none_is_the_default():
    assert [setting(None), setting(0.25), setting(1e-5), setting("nm"), setting(3)] == [
        "default",
        "0.25",
        "1e-05",
        "nm",
        "3",
    ]


def test_mean_std_with_and_without_spread_interval_and_note():
    assert mean_std(0.5) == "0.5000"  # one run: the mean alone
    assert mean_std(0.5, 0.01) == "0.5000 ± 0.0100"
    assert mean_std(0.5, 0.01, ci=(0.49, 0.51)) == "0.5000 ± 0.0100 [0.4900, 0.5100]"
    assert mean_std(0.5, 0.0, digits=3, note=" (n=2)") == "0.500 ± 0.000 (n=2)"
    assert mean_std(math.nan, 0.1) == mean_std(None) == "-"


def test_a_group_of_one_run_shows_its_mean_alone_not_a_spread_of_zero():
    one = {"n": 1, "acc_mean": 0.5, "acc_std": 0.0, "acc_ci": None}
    assert group_mean_std(one, "acc", note=" [floor 0.1000]") == "0.5000 [floor 0.1000]"
    two = {"n": 2, "acc_mean": 0.5, "acc_std": 0.0, "acc_ci": (0.5, 0.5)}
    assert group_mean_std(two, "acc") == "0.5000 ± 0.0000 [0.5000, 0.5000]"


def test_signed_numbers_and_p_values():
    assert signed(0.1, 0.088, 0.112) == "+0.100 [+0.088, +0.112]"
    assert signed(-0.25, digits=2) == "-0.25"  # no interval
    assert signed(0.01234, -0.001, 0.02, digits=4) == "+0.0123 [-0.0010, +0.0200]"
    assert [p_value(None), p_value(0.012345), p_value(1.0)] == ["-", "0.0123", "1"]


def test_markdown_table_escapes_bars():
    assert markdown_table(["a", "b"], [["1", "x|y"]]) == "| a | b |\n| --- | --- |\n| 1 | x\\|y |"

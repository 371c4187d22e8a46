"""Report figures: formatted, or "n/a" where a set had nothing to measure."""

from ivr.figures import exact_share, figure


def test_a_figure_is_formatted_and_a_missing_one_reads_n_a():
    assert figure(0.5) == "50.0000%"
    assert figure(1.23456, ".2f", "%") == "1.23%"
    assert figure(0.0, ".3f", "%") == "0.000%"  # zero is a figure, not a missing one
    assert figure(None) == "n/a" and figure(None, ".2f", "%") == "n/a"
    # a saving of nothing (zero negated) or one that rounds to zero reads as zero; real negatives keep the sign
    assert figure(-0.0, ".2f", "%") == "0.00%" and figure(-0.001, ".2f") == "0.00" and figure(-0.001, ".1%") == "-0.1%"
    assert figure(-0.5, ".2f", "%") == "-0.50%"
    # a signed spec keeps its sign, and what is not a number as it is
    assert figure(-0.001, "+.2f", "%") == figure(0.001, "+.2f", "%") == "+0.00%" and figure(-0.5, "+.1f") == "-0.5"
    assert figure(float("-inf"), "+.2f", "%") == "-inf%" and figure(-3, "d") == "-3"


def test_a_share_that_floats_hold_just_below_its_value_is_not_cut_below_it():
    """41 of 80 is 51.25% exactly, but 41 / 80 * 10**6 is 512499.99999999994 in floats."""
    assert exact_share(41 / 80) == "51.2500%" and exact_share(123 / 240) == "51.2500%"

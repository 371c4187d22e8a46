"""replacement_candidates.csv: what is written reads back equal; a bad file names its row and column."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ivr.tokenizers.candidates import CSV_COLUMNS, CandidatesError, Replacement, read_candidates, write_candidates

ints = st.integers(0, 2**62)
floats = st.floats(allow_nan=False, allow_infinity=False)
replacements = st.builds(
    Replacement,
    rank=ints,
    new_text=st.text(max_size=20),
    new_token=st.text(min_size=1, max_size=20),
    domain_count=ints,
    gpt2_ids=st.lists(ints, max_size=6),
    estimated_saving=ints,
    estimated_saving_pct=floats,
    freed_id=ints,
    freed_token=st.text(min_size=1, max_size=20),
    freed_text=st.text(max_size=20),
    freed_domain_count=ints,
    freed_general_per_million=floats,
    reason=st.text(max_size=20),
)


@hsettings(max_examples=100, deadline=None)
@given(rows=st.lists(replacements, max_size=5))
def test_written_candidates_read_back_equal(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("rt") / "c.csv"
    write_candidates(path, rows)
    assert read_candidates(path) == rows


def _row(**change) -> Replacement:
    values = dict(
        rank=1, new_text=" foo", new_token="Ġfoo", domain_count=9, gpt2_ids=[1, 2], estimated_saving=9,
        estimated_saving_pct=1.5, freed_id=40000, freed_token="Ġbar", freed_text=" bar", freed_domain_count=0,
        freed_general_per_million=0.5, reason="ranked",
    )
    return Replacement(**(values | change))


def _edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("40000", "x40000", r"c.csv: row 2: freed_id 'x40000' is not an int"),
        ("1 2", "1 two", r"c.csv: row 2: gpt2_ids 'two' is not an int"),
        ("1.5", "much", r"c.csv: row 2: estimated_saving_pct 'much' is not a number"),
        ("Ġfoo", "", r"c.csv: row 2: new_token is empty"),
        ("Ġbar", "", r"c.csv: row 2: freed_token is empty"),
    ],
)
def test_bad_rows_are_named(tmp_path, old, new, message):
    path = tmp_path / "c.csv"
    first = _row(new_token="Ġok", freed_token="Ġok2", gpt2_ids=[5], freed_id=3, estimated_saving_pct=2.5)
    write_candidates(path, [first, _row()])
    _edit(path, old, new)
    with pytest.raises(CandidatesError, match=message):
        read_candidates(path)


def test_missing_file_and_columns_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.csv: replacement candidates not found"):
        read_candidates(tmp_path / "missing.csv")
    path = tmp_path / "c.csv"
    path.write_text(",".join(c for c in CSV_COLUMNS if c != "reason") + "\n", encoding="utf-8")
    with pytest.raises(CandidatesError, match=r"c.csv: missing columns \['reason'\]"):
        read_candidates(path)


def test_an_empty_number_is_named_with_its_row(tmp_path):
    path = tmp_path / "c.csv"
    write_candidates(path, [_row()])
    _edit(path, "40000", "")
    with pytest.raises(CandidatesError, match=r"c.csv: row 1: freed_id None is not an int"):
        read_candidates(path)


@pytest.mark.parametrize("content", [b"rank,new_text\n\xff\xfe,1\n", b"rank,new_text\n1,2,3\n"],
                         ids=["not UTF-8", "ragged"])
def test_a_file_that_is_no_csv_is_named(tmp_path, content):
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(CandidatesError, match=r"c.csv: not a readable CSV file"):
        read_candidates(path)


def test_empty_cells_read_as_empty_text_and_no_ids(tmp_path):
    """A spreadsheet saves empty cells without quotes: they read back as the empty text and empty id list written,
    not as missing values."""
    path = tmp_path / "c.csv"
    row = _row(new_text="", gpt2_ids=[], freed_text="", reason="")
    write_candidates(path, [row])
    path.write_text(path.read_text(encoding="utf-8").replace('""', ""), encoding="utf-8")
    assert '""' not in path.read_text(encoding="utf-8")
    assert read_candidates(path) == [row]

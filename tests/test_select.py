from __future__ import annotations

import pytest
from tests.conftest import make_code_docs

from ivr.analysis.select import ForcedTokensError, SelectSettings, best_collapse, select_replacements
from ivr.tokenizers.byte_level import EOS_ID, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.candidates import read_candidates
from ivr.tokenizers.pieces import single_pretoken

FAST = {"min_count": 5, "general_prior_words": 2000}


@pytest.fixture(scope="module")
def selection(distilled, code_docs, tmp_path_factory):
    out = tmp_path_factory.mktemp("sel")
    settings = SelectSettings(num_replacements=40, **FAST)
    return select_replacements(distilled, code_docs, settings, out / "c.csv", out / "log.md"), out


def test_best_collapse_takes_the_best_non_overlapping_spans():
    # (1, 4) saves 3 tokens and overlaps both others, which together save only 2 + 2 - overlap
    assert best_collapse(6, [(0, 2), (2, 4), (1, 4)]) == 3
    assert best_collapse(6, [(0, 1), (2, 3), (4, 5)]) == 3
    assert best_collapse(3, []) == 0


def test_selection_frees_only_rare_ids_and_adds_single_pretoken_strings(selection, distilled):
    sel, out = selection
    reps = sel.replacements
    assert 0 < len(reps) <= 40
    vocab = distilled.get_vocab()
    bytes_ = single_byte_pieces()
    assert len({r.freed_id for r in reps}) == len(reps)
    assert len({r.new_token for r in reps}) == len(reps)
    for r in reps:
        assert r.freed_id != EOS_ID and r.freed_token not in bytes_
        assert r.freed_domain_count < 5
        assert r.new_token not in vocab
        assert single_pretoken(distilled, r.new_text)
        assert len(r.gpt2_ids) >= 2 and r.estimated_saving > 0
        assert [t.id for t in distilled.model.tokenize(r.new_token)] == r.gpt2_ids
    # savings are recomputed against earlier picks, so they never increase down the ranking
    savings = [r.estimated_saving for r in reps]
    assert savings == sorted(savings, reverse=True)
    assert read_candidates(out / "c.csv") == reps
    log = (out / "log.md").read_text(encoding="utf-8")
    assert "single-byte tokens" in log and "%** of tokens" in log
    assert f"ids reassigned: {len(reps)}" in log


def test_indentation_and_identifiers_are_found(selection):
    texts = {r.new_text for r in selection[0].replacements}
    # a line break and 8-space indent is one pre-token without its last space, which joins the next word
    assert "\n       " in texts
    assert " isinstance" in texts or "isinstance" in texts


def test_forced_tokens_come_first_and_bad_ones_name_the_line(distilled, code_docs, tmp_path):
    forced = tmp_path / "forced.txt"
    forced.write_text('# domain words\n zygomorphic\n"\\n        "\n\n', encoding="utf-8")
    settings = SelectSettings(num_replacements=5, forced_tokens_path=str(forced), **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    first = sel.replacements[:2]
    assert [r.new_text for r in first] == [" zygomorphic", "\n        "]
    assert all(r.reason == "forced" for r in first)
    assert len(sel.replacements) == 5

    forced.write_text(" fine\nnot one pretoken\n", encoding="utf-8")
    with pytest.raises(ForcedTokensError, match=r"forced.txt:2: 'not one pretoken'"):
        select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")


def test_protected_tokens_and_ids_are_never_freed(selection, distilled, code_docs, tmp_path):
    reps = selection[0].replacements
    by_text, by_piece, by_id = reps[0], reps[1], reps[2]
    settings = SelectSettings(
        num_replacements=40,
        protected_tokens=[by_text.freed_text, by_piece.freed_token],
        protected_ids=[by_id.freed_id],
        **FAST,
    )
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    freed = {r.freed_id for r in sel.replacements}
    assert not freed & {by_text.freed_id, by_piece.freed_id, by_id.freed_id}


def test_general_reference_text_delays_freeing_its_tokens(selection, distilled, code_docs, tmp_path):
    first = selection[0].replacements[0]
    ref = tmp_path / "general.txt"
    ref.write_text((first.freed_text + " ") * 20, encoding="utf-8")
    settings = SelectSettings(num_replacements=40, general_reference_paths=[str(ref)], **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert first.freed_id not in {r.freed_id for r in sel.replacements}
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        select_replacements(
            distilled, code_docs, SelectSettings(general_reference_paths=[str(tmp_path / "missing.txt")], **FAST),
            tmp_path / "c.csv", tmp_path / "log.md",
        )


def test_rare_strings_are_not_selected(distilled, tmp_path):
    docs = make_code_docs(3) + [" antidisestablishmentarianism"]
    sel = select_replacements(distilled, docs, SelectSettings(num_replacements=50, **FAST), tmp_path / "c.csv", tmp_path / "l.md")
    assert " antidisestablishmentarianism" not in {r.new_text for r in sel.replacements}
    assert all(r.domain_count >= 5 for r in sel.replacements)
    assert text_to_piece(" the") not in {r.new_token for r in sel.replacements}
    assert all(readable(r.new_token) == r.new_text for r in sel.replacements)


def test_strings_the_pre_tokenizer_cuts_alone_are_not_selected(distilled, tmp_path):
    """A string that is one pre-token only in context (the distilled run rules look ahead) must not be picked:
    remap would reject it."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    tok = Tokenizer.from_str(distilled.to_str())
    # cut a trailing run of tildes only at the end of the text, as a context-dependent rule would
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"~+\z"), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    docs = ["a ~~~~~~~ b\n" * 50]
    assert not single_pretoken(tok, " ~~~~~~~")
    selection = select_replacements(tok, docs, SelectSettings(num_replacements=20, min_count=5),
                                     tmp_path / "c.csv", tmp_path / "log.md")
    for r in selection.replacements:
        assert single_pretoken(tok, r.new_text), r.new_text
    assert selection.summary["excluded"]["split_when_alone"] >= 1

"""Runs of white space: tabs and newlines get split rules, and a run after other white space that BPE joins to it
(a newline and the indentation after it) is cut where BPE cuts it, never where BPE merges across the cut."""

from __future__ import annotations

from functools import lru_cache

from hypothesis import given, settings as hsettings, strategies as st

from ivr.tokenizers.distill.pre_tokenizer import rules_pre_tokenizer, with_rules
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.split_rules import split_rule_for
from ivr.tokenizers.distill.white_runs import kept_apart
from tests.test_split_rules import behind_gpt2_pre_tokenizer, tiny_bpe

# tabs in chunks of 8, 4, 2, 1 (BPE: 10 tabs are 8·2, which the Unigram ties the other way)
TABS = [("ĉ", "ĉ"), ("ĉĉ", "ĉĉ"), ("ĉĉĉĉ", "ĉĉĉĉ"), ("x", "y")]
# SmolLM2's kind: a newline joins the spaces after it, but only after the spaces' own first merge; a newline
# and a tab are one piece, and the tab never joins a space
INDENT = [("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ċ", "ĠĠ"), ("x", "y"), ("Ċ", "ĉ")]


def pre_tokens(rules: list[dict], text: str) -> list[str]:
    return [p for p, _ in rules_pre_tokenizer(rules).pre_tokenize_str(text)]


def test_runs_of_tabs_get_a_rule_of_their_own():
    bpe = tiny_bpe(TABS)
    rule = split_rule_for(bpe, "ĉ", 24)
    assert rule["class"] == "tab"
    assert pre_tokens([rule], "xy" + "\t" * 10) == ["xy", "ĉ" * 8, "ĉĉ"]
    cut, full = with_rules(bpe, [rule]), behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 24):
        # at the end of the text too: 8 tabs there are one piece, not the 4·3 (and a last tab) of a shorter run
        tabs = "\t" * n
        for text in [f"xy{tabs}", f"xy{tabs}xy", f"\n{tabs}xy", f"xy{tabs}\n", f"{tabs} \n"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_a_run_ends_before_white_space_only_where_no_piece_joins_them():
    # GPT-2 joins a newline to no other white character: the run of newlines is cut as BPE chunks it, though tabs
    # follow in its pre-token; with a piece "Ċĉ" BPE may join them, and the white space is left whole
    apart = tiny_bpe([("Ċ", "Ċ"), ("ĉ", "ĉ"), ("x", "y")])
    assert pre_tokens([split_rule_for(apart, "Ċ", 16)], "xy\n\n\n\t\t") == ["xy", "ĊĊ", "Ċĉĉ"]
    joined = tiny_bpe([("Ċ", "Ċ"), ("ĉ", "ĉ"), ("x", "y"), ("Ċ", "ĉ")])
    assert pre_tokens([split_rule_for(joined, "Ċ", 16)], "xy\n\n\n\t\t") == ["xy", "ĊĊĊĉĉ"]


def test_a_run_ends_before_white_space_beyond_ascii_where_no_piece_joins_them():
    # a no-break space or U+3000 (Japanese indentation) after blank lines: GPT-2's regex keeps them in the
    # newlines' pre-token, and the run is cut as BPE chunks it where no piece holds a newline before their first
    # byte; with a piece "ĊÂ" BPE may join them, and the white space is left whole
    apart = tiny_bpe([("Ċ", "Ċ"), ("x", "y")])
    assert pre_tokens([split_rule_for(apart, "Ċ", 16)], "xy\n\n\n\u00a0xy") == ["xy", "ĊĊ", "Ċ", "Âł", "xy"]
    assert pre_tokens([split_rule_for(apart, "Ċ", 16)], "xy\n\n\n\u3000\u3000") == ["xy", "ĊĊ", "ĊãĢĢãĢĢ"]
    joined = tiny_bpe([("Ċ", "Ċ"), ("x", "y"), ("Ċ", "Â")])
    assert pre_tokens([split_rule_for(joined, "Ċ", 16)], "xy\n\n\n\u00a0\u00a0") == ["xy", "ĊĊĊÂłÂł"]
    assert pre_tokens([split_rule_for(joined, "Ċ", 16)], "xy\n\n\n\u3000\u3000") == ["xy", "ĊĊ", "ĊãĢĢãĢĢ"]


def test_a_run_ends_before_white_space_that_bpe_never_merges_with_it():
    # "ĠĉĊ" joins a tab to a newline, but only after a space: a run of tabs never takes the newline, and trailing
    # tabs before a blank line are cut as a run (the last chunk stays with the newline, a short pre-token the
    # Unigram gets right); "ĉĊ" itself takes an odd run's last tab, and nothing is cut there
    never = tiny_bpe(TABS + [("Ġ", "ĉ"), ("Ġĉ", "Ċ")])
    assert "\n" in kept_apart(never, "\t", 16)
    assert pre_tokens([split_rule_for(never, "ĉ", 16)], "xy" + "\t" * 10 + "\n") == ["xy", "ĉ" * 8, "ĉĉĊ"]
    merged = tiny_bpe(TABS + [("ĉ", "Ċ")])
    assert "\n" not in kept_apart(merged, "\t", 16)
    assert pre_tokens([split_rule_for(merged, "ĉ", 16)], "xy" + "\t" * 10 + "\n") == ["xy", "ĉ" * 10 + "Ċ"]


def test_bpe_is_asked_about_the_white_space_a_joining_piece_holds_after_the_join():
    # "ĊĊĠĠĠĠ" joins a newline to a newline only with four spaces after them, and "ĉĉĊČ" a tab to a newline only
    # with a form feed after it: asking about two characters after the run would trust a cut BPE merges across
    four = tiny_bpe([("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ċ", "ĠĠĠĠ"), ("Ċ", "ĊĠĠĠĠ")])
    assert " " not in kept_apart(four, "\n", 16)
    feed = tiny_bpe([("Ċ", "Č"), ("ĉ", "ĊČ"), ("ĉ", "ĉĊČ")])
    assert "\n" not in kept_apart(feed, "\t", 16)
    for bpe, text in ((four, "x\n\n    "), (feed, "x\t\t\t\n\x0c")):
        rules = [r for c in "ĠĊĉ" if (r := split_rule_for(bpe, c, 16))]
        assert with_rules(bpe, rules).encode(text).ids == behind_gpt2_pre_tokenizer(bpe).encode(text).ids


def test_a_long_prefix_before_a_run_is_cut_off_and_a_longer_one_left_whole():
    # trailing spaces before blank lines (GPT-2 joins no space to a newline): the spaces are cut off, and the
    # newlines chunked as BPE does, up to max_run spaces; the prefix is bounded, so that a long stretch of white
    # space is not rescanned from every pre-token in it
    bpe = tiny_bpe([("Ċ", "Ċ"), ("x", "y")])
    rule = split_rule_for(bpe, "Ċ", 16)
    assert pre_tokens([rule], "xy" + " " * 16 + "\n\n\n") == ["xy", "Ġ" * 16, "ĊĊ", "Ċ"]
    assert pre_tokens([rule], "xy" + " " * 17 + "\n\n\n") == ["xy", "Ġ" * 17 + "ĊĊĊ"]


def test_a_run_of_spaces_after_a_newline_that_joins_it_is_cut_as_bpe_cuts_it():
    bpe = tiny_bpe(INDENT)
    rule = split_rule_for(bpe, "Ġ", 24)
    assert rule["white_led"]
    # BPE: the newline takes two spaces where they are left over ("ĊĠĠ"·"Ġ"), else the run is chunked alone
    assert pre_tokens([rule], "xy\n   ") == ["xy", "ĊĠĠ", "Ġ"]
    assert pre_tokens([rule], "xy\n       xy") == ["xy", "Ċ", "ĠĠĠĠ", "ĠĠ", "Ġxy"]
    # the tab never joins a space: the newline and the tab are cut off before the run
    assert pre_tokens([rule], "xy\n\t       xy") == ["xy", "Ċĉ", "ĠĠĠĠ", "ĠĠ", "Ġxy"]
    # three characters of lead: two blank lines before the indentation
    assert pre_tokens([rule], "xy\n\n\n       xy")[:2] == ["xy", "ĊĊĊ"]


# BPEs whose space, newline and tab rules the property test checks: SmolLM2's kind, one where a tab joins spaces
# and a space joins a newline, one where a tab takes a newline after an odd run, and two whose joining pieces
# need four spaces after the join
CHECKED = (INDENT, TABS + [("Ċ", "Ċ"), ("ĉ", "Ġ"), ("Ġ", "Ġ"), ("Ġ", "Ċ")],
           TABS + [("ĉ", "Ċ"), ("Ġ", "ĉ"), ("Ġĉ", "Ċ")],
           [("Ċ", "ĉ"), ("ĉ", "ĉ"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("ĉ", "ĠĠĠĠ"), ("Ċ", "ĉĠĠĠĠ")],
           [("Ġ", "Ġ"), ("Ċ", "Ċ"), ("ĠĠ", "ĠĠ"), ("ĊĊ", "ĠĠĠĠ"), ("Ġ", "ĊĊĠĠĠĠ")],
           # a newline joined to the first byte of a no-break space, and a no-break space to a tab
           [("Ċ", "Ċ"), ("ĉ", "ĉ"), ("Ġ", "Ġ"), ("Ċ", "Â"), ("Â", "ł"), ("Âł", "ĉ")])


@lru_cache(maxsize=None)
def behind_rules_and_not(i: int):
    bpe = tiny_bpe(CHECKED[i])
    rules = [r for c in "ĠĊĉ" if (r := split_rule_for(bpe, c, 16))]
    return with_rules(bpe, rules), behind_gpt2_pre_tokenizer(bpe)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([" ", "  ", "    ", "\n", "\t", "\t\t", "\r\n", "\n\n", "xy", "x", "(", "\u00a0",
                                  "\u3000", "\u2028", "\x85"]),
                min_size=1, max_size=30))
def test_white_space_rules_never_cut_where_bpe_merges(parts):
    # BPE's own model behind the space, newline and tab rules gives the ids it gives behind GPT-2's pre-tokenizer
    text = "".join(parts)
    for i in range(len(CHECKED)):
        cut, full = behind_rules_and_not(i)
        assert cut.encode(text).ids == full.encode(text).ids, text


def test_spaces_newlines_and_tabs_get_rules_by_default():
    assert {" ", "\n", "\t"} <= set(DistillSettings.split_rule_chars)


def test_trailing_spaces_before_a_line_break_and_a_word_are_cut_though_a_piece_joins_a_space_to_it():
    # GPT-2's regex ends the spaces' pre-token before the newline when a word follows, so BPE never merges
    # "Ġ" + "Ċ" there: the spaces are cut into BPE's chunks, which the Unigram would order the other way
    bpe = tiny_bpe([("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ġ", "Ċ"), ("x", "y")])
    assert pre_tokens([split_rule_for(bpe, "Ġ", 16)], "xy     \nxy") == ["xy", "ĠĠĠĠ", "Ġ", "Ċ", "xy"]

"""Split rules: runs of one character cut into BPE's chunks, and only where BPE never merges across the cut."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tokenizers.models import BPE

from ivr.tokenizers.byte_level import byte_to_char, piece_to_bytes, text_to_piece
from ivr.tokenizers.distill.pre_tokenizer import rules_pre_tokenizer, with_rules
from ivr.tokenizers.distill.rule_selection import (
    TOO_FEW_WRONG, earns_a_rule, may_earn_a_rule, select_split_rules, words_with_runs,
)
from ivr.tokenizers.distill import split_rules
from ivr.tokenizers.distill.split_rules import (
    joined_before, memo_split_rule, merging_after, split_rule_for, utf8_prefix_range,
)
from ivr.tokenizers.unigram import bare_model
from tests.distill_fixtures import fast_settings
from tests.standin import gpt2_merges


def test_table_borders_are_cut_where_bpe_keeps_them_apart(bpe, rule):
    # "-+" and "--+" are pieces: BPE merges a run's end with "+" after some run lengths and not others
    rules = [rule(c) for c in "-="]
    pre = rules_pre_tokenizer(rules)
    # the Unigram alone would order the run's chunks the other way (a tie): the rules cut them as BPE does
    assert [p for p, _ in pre.pre_tokenize_str(" +" + "-" * 19 + "+")] == ["Ġ+", "-" * 16, "---", "+"]
    # a run whose end BPE merges with the next character is cut where BPE cuts it
    assert [p for p, _ in pre.pre_tokenize_str("+" + "-" * 13 + "+")] == ["+", "-" * 12, "-+"]
    paren = rules_pre_tokenizer([rule("(")])
    # ... unless what follows the neighbour changes BPE's mind: "((" "'." but "(" "('" "x"
    assert [p for p, _ in paren.pre_tokenize_str("(('.")] == ["(('."]
    assert [p for p, _ in paren.pre_tokenize_str("(('x")] == ["(", "('", "x"]
    # after a space BPE's first chunk takes the space and some of the run, or the space alone
    assert [p for p, _ in pre.pre_tokenize_str(" " + "=" * 15)] == ["Ġ=", "=" * 12, "=="]
    assert [p for p, _ in pre.pre_tokenize_str(" " + "-" * 25)] == ["Ġ", "-" * 24, "-"]
    cut_bpe = with_rules(bare_model(bpe), rules)
    for n in range(2, 40):
        for text in [f" +{'-' * n}+{'-' * (n + 3)}+", f"|{'=' * n}+{'=' * 7}|\n", f"+{'-' * n}--+{'-' * n}-+",
                     f"+{'-' * n}+-", f"+{'-' * n}+){'-' * n}>"]:
            assert cut_bpe.encode(text).ids == bpe.encode(text).ids, text


PUNCT_RULES = "'\":)[=%/"


@pytest.fixture(scope="module")
def punct_rules(rule):
    return [rule(c) for c in PUNCT_RULES]


@pytest.fixture(scope="module")
def punct_cut_bpe(bpe, punct_rules):
    """GPT-2's BPE model behind the punctuation rules: any cut BPE would merge across shows up as other ids."""
    return with_rules(bare_model(bpe), punct_rules)


def tiny_bpe(merges: list[tuple[str, str]]) -> Tokenizer:
    """A bare byte-level BPE of the 256 bytes and the pieces ``merges`` build, in that order of rank."""
    pieces = list(byte_to_char().values()) + ["".join(m) for m in merges]
    return Tokenizer(BPE({p: i for i, p in enumerate(pieces)}, merges))


def behind_gpt2_pre_tokenizer(bpe: Tokenizer) -> Tokenizer:
    """``bpe`` behind GPT-2's own byte-level pre-tokenizer, no rules: the ids a BPE behind rules must give."""
    full = with_rules(bpe, [])
    full.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    full.normalizer = None
    return full


def test_no_prefix_alternative_matches_inside_its_own_run(punct_rules):
    # the pre-tokenizer skips the prefix alternatives where the scanned character is the run's own: a prefix
    # character is the one before a run, never part of it
    with_prefix = [r for r in punct_rules if r.get("prefix")]
    assert with_prefix
    for r in with_prefix:
        c = piece_to_bytes(r["char"]).decode("utf-8")
        prefix = pre_tokenizers.Split(Regex(r["prefix"]), behavior="isolated")
        for text in (c * n + tail for n in range(2, 12) for tail in ("", " ", "a", "(", "'s")):
            assert [p for p, _ in prefix.pre_tokenize_str(text)] == [text], (r["char"], text)


def test_quote_runs_are_cut_before_punctuation_where_bpe_is(bpe, punct_rules):
    pre = rules_pre_tokenizer(punct_rules)
    # a run of quotes inside punctuation: BPE keeps ' "' apart and merges the last quote with the next '"'
    assert [p for p, _ in pre.pre_tokenize_str(" \"'''\"")] == ["Ġ\"", "''", "'\""]
    assert [p for p, _ in pre.pre_tokenize_str("\"\"\"'")] == ["\"\"", "\"'"]
    # ... but three double quotes and '" give the three and '": the next character excludes that cut
    assert bare_model(bpe).encode("\"\"\"'\"").tokens == ["\"\"\"", "'\""]
    assert [p for p, _ in pre.pre_tokenize_str("\"\"\"'\"")] == ["\"\"\"'\""]


@pytest.mark.parametrize("text", [
    "\":[[[[[[[$", "/'=======\\\"", "|.'\"\"\"\"(", ":::::::://////", "'////)):////", "^]]]]:///-%%%%%%%%%",
    "::::::::///////\\\n\n\n---", "11111\\\\\\\"\"\"\":[[[]]]]]",
])
def test_rules_hold_where_a_neighbour_or_the_token_after_it_decides(bpe, punct_cut_bpe, text):
    # found by random punctuation strings: a cut next to a neighbour must also hold when a longer token
    # takes the neighbour (":[" after '"', '=\"' after "=", "://" after ":")
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(PUNCT_RULES + "(]-.!,+*\\ x1\n")), st.integers(1, 9)),
                max_size=8).map(lambda runs: "".join(c * n for c, n in runs)))
def test_rules_on_random_punctuation_runs_give_bpe_ids(bpe, punct_cut_bpe, text):
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


@pytest.mark.parametrize("before,run", [(" 😀", ":::"), (" ★", ")))"), ("€", ":::"), (" ✓", "\"\"\""), ("∞", "%%%%"),
                                        ("×", "[[[["), ("™", "////"), (" ❤", "===="), ("：", "%%%")])
def test_a_run_after_any_non_ascii_punctuation_starts_a_pre_token(bpe, punct_rules, punct_cut_bpe, before, run):
    # an emoji, a star, a currency or maths sign is GPT-2 punctuation: no merge joins it to the run, so the run
    # is cut off it and chunked by its rule (the Unigram alone orders a run's chunks the other way)
    text = f"x{before}{run} ok"
    assert text_to_piece(before) in [p for p, _ in rules_pre_tokenizer(punct_rules).pre_tokenize_str(text)]
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


@pytest.mark.parametrize("before,run", [("\x1c", "'''''"), ("\x00", "%%%%"), (" \x1b", "===="), ("\x7f", "[[[[")])
def test_a_run_after_an_ascii_control_character_starts_a_pre_token(bpe, punct_rules, punct_cut_bpe, before, run):
    # control characters are GPT-2 punctuation too, and no GPT-2 piece holds one beside anything: the run is cut off
    # it as off any other character no merge joins to it (the Unigram alone gives "\x1c'''''" "'" "''''")
    text = f"x{before}{run} ok"
    assert text_to_piece(before) in [p for p, _ in rules_pre_tokenizer(punct_rules).pre_tokenize_str(text)]
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


def test_a_run_is_not_cut_next_to_a_control_character_a_merge_joins_to_it():
    # a vocabulary may join a control character to punctuation: then no cut is made on that side of the run
    sep = text_to_piece("\x1c")
    for merges, texts in [([("-", sep), ("-", "-"), ("--", "--")], ["x" + "-" * n + "\x1c" for n in range(1, 9)]),
                          ([(sep, "-"), ("-", "-"), ("--", "--")], ["x\x1c" + "-" * n for n in range(1, 9)])]:
        source = tiny_bpe(merges)
        cut = with_rules(bare_model(source), [split_rule_for(source, "-", 8)])
        for text in texts:
            assert cut.encode(text).ids == behind_gpt2_pre_tokenizer(source).encode(text).ids, text


def test_utf8_ranges_and_the_characters_bpe_merges_after_a_run():
    assert utf8_prefix_range(b"\xe2") == (0x2000, 0x2FFF)
    assert utf8_prefix_range(b"\xe2\x94") == (0x2500, 0x253F)
    assert utf8_prefix_range(b"\xe0") == (0x800, 0xFFF)  # no overlong forms
    assert utf8_prefix_range(b"\xed") == (0xD000, 0xD7FF)  # no surrogates
    assert utf8_prefix_range(b"\xf0") == (0x10000, 0x3FFFF)
    assert utf8_prefix_range(b"\x94") is None  # a continuation byte starts no character
    # GPT-2 merges ".–" and ".—": a run of "." is not cut before them; "┐" joins no "."
    after = {chr(c) for c in merging_after(".", gpt2_merges())}
    assert {"–", "—"} <= after and "┐" not in after
    assert "…" in joined_before(".", gpt2_merges())  # "…" + ".." is one token


def test_a_rule_whose_pieces_the_model_gets_wrong_is_refused(bpe):
    bare = bare_model(bpe)

    class HeadBlind:  # BPE's ids, except for " ─" alone: the piece a rule cuts off a run after a space
        def encode_batch(self, words):
            return [SimpleNamespace(ids=[0] if w == "ĠâĶĢ" else e.ids) for w, e in zip(words, bare.encode_batch(words))]

    settings = fast_settings(split_rule_chars="─")
    kept, considered = select_split_rules(bare, HeadBlind(), [], np.zeros(0), [], settings)
    (entry,) = [c for c in considered if c["char"] == "âĶĢ"]
    assert not kept and not entry["accepted"] and entry["broken_runs"] > 0
    kept, _ = select_split_rules(bare, bare, [], np.zeros(0), [], settings)
    assert [r["char"] for r in kept] == ["âĶĢ"]


def test_a_rule_must_fix_enough_occurrences_or_be_listed():
    settings = fast_settings(split_rule_chars="~", split_rule_min_fixed=10)
    words, weights = ["~" * 14, "a~~", "x"], np.array([3.0, 8.0, 50.0])
    assert not may_earn_a_rule("~", False, words, weights, [0], settings)  # 3 of the 10 occurrences asked for
    assert may_earn_a_rule("~", False, words, weights, [0, 1], settings)
    assert may_earn_a_rule("~", True, words, weights, [], settings)  # listed: no count asked
    assert not earns_a_rule(False, [], 0.0, fast_settings(split_rule_min_fixed=0))  # 0 still asks for one fixed word
    assert earns_a_rule(False, [2], 1.0, fast_settings(split_rule_min_fixed=0))


def test_a_character_without_enough_wrong_words_is_reported_as_such(bpe):
    bare = bare_model(bpe)
    words = ["~" * 14]
    gold = [e.ids for e in bare.encode_batch(words)]
    settings = fast_settings(split_rule_chars="", split_rule_min_fixed=10)

    class Wrong:  # the model gets the run wrong, but it weighs 3 of the 10 occurrences a rule must fix
        def encode_batch(self, texts):
            return [SimpleNamespace(ids=[0]) for _ in texts]

    _, considered = select_split_rules(bare, Wrong(), words, np.array([3.0]), gold, settings)
    (entry,) = [c for c in considered if c["char"] == "~"]
    assert entry == {"char": "~", "accepted": False, "reason": TOO_FEW_WRONG}


# byte-level pieces: newline, and the multi-byte box drawing "─", ellipsis "…" and Hangul letter "ㅋ"
@pytest.mark.parametrize("char", ["=", "-", "#", ".", "'", '"', "(", ")", "Ċ", "9", "x", "âĶĢ", "âĢ¦", "ãħĭ"])
def test_split_rule_reproduces_bpe_runs(bpe, rule, char):
    bare = bare_model(bpe)
    run_rule = rule(char)
    assert run_rule is not None
    raw = piece_to_bytes(char).decode("utf-8")
    pre = rules_pre_tokenizer([run_rule])
    # BPE's model behind the rules: any cut BPE would merge across shows up as other ids
    cut_bpe = with_rules(bare, [run_rule])
    led_cut = 0
    for n in range(1, 65):
        run = raw * n
        assert [p for p, _ in pre.pre_tokenize_str(run)] == bare.encode(char * n).tokens, n
        for end in (" ", "\t"):  # also where one white character ends the text: every chunk its own pre-token
            assert sum(char in p for p, _ in pre.pre_tokenize_str(run + end)) == len(bare.encode(char * n).tokens), n
        # after a space the rule either cuts the run into BPE's chunks or leaves it whole to GPT-2's alternatives;
        # the first chunk (the space and part of the run) may be more than one BPE token: " ─" is "ĠâĶ" "Ģ"
        led, gold = [p for p, _ in pre.pre_tokenize_str(" " + run)], bare.encode("Ġ" + char * n).tokens
        head = len(gold) - len(led) + 1
        assert led == ["Ġ" + char * n] or (led[1:] == gold[head:] and led[0] == "".join(gold[:head])), n
        led_cut += len(led) > 1
        for text in [" " + run, "x" + run + "y", "(" + run + ")", run + "\n", " " + run + " z", "a\n" + run + "b",
                     run + "s", run + "'", run + "'.", "1" + run + "2",
                     run + "   x", run + " \n y", "a" + run + "\t\tb", run + "\u00a0\u00a0c",
                     "#" + run, "+" + run + "+" + run + "+", " (" + run + ")", run + "'s", "=" + run + "é", "''" + run,
                     "说" + run + "好", run + "—", run + "…x", run + "┐", run + "€5", run + "–", run + "」",
                     "┌" + run + "┬" + run + "┐", " └" + run + "→", "•" + run + "\ufffd", "…" + run, "├" + run,
                     " «" + run + "»", "¿" + run + "?", "§" + run, "°" + run + "°", "：" + run + "。", "「" + run,
                     ' "' + run + '",', run + "'\"", run + "\"'\"", "(" + run + "'\\", run + ")]",
                     run + '"""', run + "')-", ' "' + run + '"):', "!)." + run, run + "'\"'", run + ")'''"]:
            assert cut_bpe.encode(text).ids == bpe.encode(text).ids, (n, text)
    assert led_cut > 0 or char == "Ċ"  # GPT-2 keeps spaces with newlines


def test_runs_of_spaces_are_cut_into_bpes_chunks():
    # a BPE whose space chunks the Unigram orders the other way: six spaces are 4 + 2 in BPE, 2 + 4 in a tie
    bpe = tiny_bpe([("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("x", "y")])
    rule = split_rule_for(bpe, "Ġ", 16)
    assert rule["class"] == "space"
    cut = with_rules(bpe, [rule])
    full = behind_gpt2_pre_tokenizer(bpe)
    # trailing spaces before a newline and a word are a pre-token of their own, so they are cut too
    assert [p for p, _ in rules_pre_tokenizer([rule]).pre_tokenize_str("xy      \nxy")] == ["xy", "ĠĠĠĠ", "ĠĠ", "Ċ", "xy"]
    for n in range(1, 20):
        for text in [f"xy{' ' * n}xy", f"xy{' ' * n}", f"({' ' * n}\n{' ' * n})", f"{' ' * n}\txy", f"xy{' ' * n}\nxy",
                     f"xy{' ' * n}\n", f"xy{' ' * n}\n\nxy", f"xy{' ' * n}\r\nxy", f"xy{' ' * n}\u00a0xy", f"{' ' * n}\n xy"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_a_merge_of_a_run_with_a_space_does_not_move_a_cut():
    # DeepSeek-Coder's ">Ġ": BPE gives ">>>" before " x", since GPT-2's regex gives the space to the word; a rule
    # that took the space for a neighbour of the run would cut ">>" ">" there
    bpe = tiny_bpe([(">", ">"), (">", "Ġ"), (">>", ">"), ("x", "y")])
    rule = split_rule_for(bpe, ">", 16)
    assert [p for p, _ in rules_pre_tokenizer([rule]).pre_tokenize_str(">>> xy")] == [">>>", "Ġxy"]
    cut, full = with_rules(bpe, [rule]), behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 12):
        for text in [f"{'>' * n} xy", f"{'>' * n}  xy", f"{'>' * n}\n", f"xy {'>' * n} ", f"{'>' * n}\t>"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_white_space_before_a_run_of_spaces_is_cut_off_where_no_piece_joins_them():
    # DeepSeek-Coder's case: GPT-2's regex keeps "\n" with the indentation after it, the newline never merges with
    # a space, and the run of spaces after it is a tie the Unigram would order the other way
    bpe = tiny_bpe([("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("x", "y"), ("ĉ", "Ġ")])
    rule = split_rule_for(bpe, "Ġ", 16)
    pre = rules_pre_tokenizer([rule])
    assert [p for p, _ in pre.pre_tokenize_str("xy\n\n       xy")] == ["xy", "ĊĊ", "ĠĠĠĠ", "ĠĠ", "Ġxy"]
    # a tab joins a space here ("ĉĠ"), but only after the spaces' own merges: BPE is asked about each run length
    # after the tab, and cuts after the tab alone where it does
    assert [p for p, _ in pre.pre_tokenize_str("xy\t       xy")] == ["xy", "ĉ", "ĠĠĠĠ", "ĠĠ", "Ġxy"]
    assert [p for p, _ in pre.pre_tokenize_str("xy\t xy")] == ["xy", "ĉ", "Ġxy"]
    # a run of newlines before the spaces is still cut by the newline rule
    newlines = tiny_bpe([("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ċ", "Ċ"), ("ĊĊ", "ĊĊ"), ("x", "y")])
    both = [split_rule_for(newlines, "Ċ", 16), split_rule_for(newlines, "Ġ", 16)]
    assert both[1]["white_before"]
    assert [p for p, _ in rules_pre_tokenizer(both).pre_tokenize_str("xy\n\n\n\n\n\n    xy")][:3] == [
        "xy", "ĊĊĊĊ", "ĊĊ"]  # BPE's chunks of six newlines
    cut, full = with_rules(bpe, [rule]), behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 20):
        for text in [f"xy\n{' ' * n}xy", f"xy\n{' ' * n}", f"\r\n{' ' * n}\txy", f"xy\n\t{' ' * n}xy",
                     f"xy\t\n{' ' * n}xy", f"\n\n{' ' * n}\n{' ' * n}xy", f"xy \n{' ' * n}xy"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)

def test_trailing_white_space_before_a_run_of_newlines_is_cut_off_where_no_piece_joins_them():
    # GPT-2's regex keeps a line's trailing spaces with the blank lines after them (" \n\n\n", BPE Ġ·ĊĊ·Ċ), where
    # the Unigram would put the short chunk of newlines first
    bpe = tiny_bpe([("Ċ", "Ċ"), ("x", "y"), ("Ġ", "x")])
    rule = split_rule_for(bpe, "Ċ", 16)
    assert rule["white_before"]
    pre = rules_pre_tokenizer([rule])
    assert [p for p, _ in pre.pre_tokenize_str("xy \n\n\n")] == ["xy", "Ġ", "ĊĊ", "Ċ"]
    assert [p for p, _ in pre.pre_tokenize_str("xy \t\n\n\n    xy")][:4] == ["xy", "Ġĉ", "ĊĊ", "ĊĠĠĠ"]
    cut, full = with_rules(bpe, [rule]), behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 12):
        run = "\n" * n
        for text in [f"xy {run}", f"xy\t{run}  xy", f"xy  {run}xy", f" \t{run}\t xy", f"xy \r{run} "]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)
    # a piece that joins a space to a newline keeps the two together
    before = split_rule_for(tiny_bpe([("Ċ", "Ċ"), ("Ġ", "Ċ")]), "Ċ", 16)["white_before"]
    assert before.startswith(r"[\x{09}\x{0B}\x{0C}\x{0D}\x{85}\x{A0}") and before.endswith(r"]{1,16}(?=\x{0A}{2})")
    assert r"\x{20}" not in before


@pytest.mark.parametrize("text", [" «%%%", "¿%%%", "»%%%%%", "：%%%", "「%%%"])
def test_runs_after_non_ascii_punctuation_are_cut_into_bpes_tokens(bpe, rule, text):
    # `` «%%%`` is a tie for the Unigram (``%%·%`` or ``%·%%``); no merge joins a guillemet to ``%``, so the run
    # is cut off and chunked as BPE does (``¿`` itself is two BPE tokens, one pre-token)
    pieces = [p for p, _ in rules_pre_tokenizer([rule("%")]).pre_tokenize_str(text)]
    tokens = bpe.encode(text).tokens
    assert pieces[-2:] == tokens[-2:] and "".join(pieces) == "".join(tokens)


def test_a_run_before_a_neighbour_that_a_token_joins_to_non_ascii_punctuation_is_cut_as_bpe_cuts_it(bpe, rule):
    # `"…` is one GPT-2 token: before it `"` cannot take the run's last `}` (`}"`), so BPE ends the run otherwise
    cut = with_rules(bare_model(bpe), [rule("}")])
    for n in range(2, 40):
        for tail in ('"…', '"—x', '"'):
            text = "}" * n + tail
            assert cut.encode(text).ids == bpe.encode(text).ids, text


def test_a_run_after_a_space_and_a_neighbour_is_cut_where_bpe_joins_the_space_first():
    # a BPE with a token of "#" and four dashes but an earlier merge of " #": the cut before the run holds after
    # a space alone (SmolLM2 has "#" and 64 dashes), so only there the rule cuts it
    # a space joins the run too, and two spaces join first: a space is no neighbour to cut after
    bpe = tiny_bpe([("-", "-"), ("Ġ", "Ġ"), ("--", "--"), ("Ġ", "#"), ("#", "----"), ("x", "y"), ("Ġ", "----")])
    rule = split_rule_for(bpe, "-", 16)
    pre = rules_pre_tokenizer([rule])
    assert [p for p, _ in pre.pre_tokenize_str("xy #------")] == ["xy", "Ġ#", "----", "--"]
    assert [p for p, _ in pre.pre_tokenize_str("xy#------")] == ["xy", "#------"]
    cut = with_rules(bpe, [rule])
    full = behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 20):
        for text in [f"xy #{'-' * n}", f" #{'-' * n}#", f"( #{'-' * n})", f"xy#{'-' * n} #", f"  #{'-' * n}xy", f"xy  {'-' * n}"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_a_run_before_a_token_of_its_character_and_the_neighbour_is_cut_as_bpe_cuts_it():
    # SmolLM2's merges, in its order: "('" + "_" comes before "(" + "('" and "((" + "(", so four "(" before "'_"
    # are "(((" "('_" but before "'" alone "((" "(('": the rest of "('_" after "('" must be asked about
    bpe = tiny_bpe([("(", "'"), ("(", "("), ("('", "_"), ("(", "('"), ("((", "("), ("x", "y")])
    cut = with_rules(bpe, [split_rule_for(bpe, "(", 16)])
    full = behind_gpt2_pre_tokenizer(bpe)
    assert full.encode("(((('_").tokens == ["(((", "('_"]
    for n in range(1, 20):
        for text in [f"{'(' * n}'_", f"{'(' * n}'", f"xy{'(' * n}'_xy", f" {'(' * n}'_", f"{'(' * n}'x"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_letters_after_a_neighbour_do_not_keep_a_run_whole():
    """GPT-2's regex gives the letters after punctuation to the next pre-token, so BPE never sees ``-+x`` whole:
    only punctuation tokens that start with the neighbour may keep a cut before it from being made."""
    bpe = tiny_bpe([("-", "-"), ("+", "x"), ("-", "+x"), ("--", "-+x")])
    assert bpe.encode("---+").tokens == ["--", "-", "+"]
    pre = rules_pre_tokenizer([split_rule_for(bpe, "-", 8)])
    assert [p for p, _ in pre.pre_tokenize_str("xy---+x")] == ["xy", "--", "-+", "x"]


def test_a_character_whose_runs_bpe_cuts_inside_the_character_gets_no_rule():
    # no regex can cut between the bytes of one character: "©Ã" is merged before "Ã©" ("é"), so "éé" is
    # "Ã" "©Ã" "©"
    bpe = tiny_bpe([("©", "Ã"), ("Ã", "©")])
    assert bpe.encode("Ã©Ã©").tokens == ["Ã", "©Ã", "©"]
    assert split_rule_for(bpe, "Ã©", 8) is None


def test_a_run_is_not_cut_off_before_a_character_whose_first_byte_bpe_merges_with_the_run():
    # "Ģ" + "Â" joins the last byte of "─" to the first of "«": before "«" BPE no longer chunks the run as alone
    bpe = tiny_bpe([("Ģ", "Â"), ("â", "Ķ"), ("âĶ", "Ģ"), ("âĶĢ", "âĶĢ")])
    cut, full = with_rules(bpe, [split_rule_for(bpe, "âĶĢ", 8)]), behind_gpt2_pre_tokenizer(bpe)
    assert full.encode("──«").tokens != full.encode("──").tokens + full.encode("«").tokens
    for n in range(1, 9):
        for text in ["─" * n + "«", "x" + "─" * n + "«x"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_a_run_is_not_cut_off_after_a_character_whose_last_byte_bpe_merges_with_the_run():
    # "ħ" + "-" joins the last byte of "★" to the run, ahead of the run's own merges: no class of whole
    # characters can say which characters end in that byte, so no run is cut off after non-ASCII punctuation
    bpe = tiny_bpe([("ħ", "-"), ("-", "-")])
    rule = split_rule_for(bpe, "-", 8)
    assert [p for p, _ in rules_pre_tokenizer([rule]).pre_tokenize_str("★---")] == ["âĺħ---"]
    cut, full = with_rules(bpe, [rule]), behind_gpt2_pre_tokenizer(bpe)
    for n in range(1, 9):
        for text in ["★" + "-" * n, "x★" + "-" * n + "x"]:
            assert cut.encode(text).ids == full.encode(text).ids, (n, text)


def test_a_rule_built_for_one_longest_run_is_not_handed_out_for_another(monkeypatch):
    # one process may fit with several max_run settings (a benchmark's sweep): each gets the rule of its own
    monkeypatch.setattr(split_rules, "SPLIT_RULE_CACHE", {})
    bpe = tiny_bpe([("-", "-"), ("--", "--")])
    short = memo_split_rule(bpe, "fingerprint", "-", 4)
    assert memo_split_rule(bpe, "fingerprint", "-", 12) == split_rule_for(bpe, "-", 12) != short


class WrongOn:
    """BPE's ids, except for the words ``texts``, which come out as one wrong id."""

    def __init__(self, bare, texts):
        self.bare, self.texts = bare, set(texts)

    def encode_batch(self, words):
        return [SimpleNamespace(ids=[0] if w in self.texts else e.ids) for w, e in zip(words, self.bare.encode_batch(words))]


def test_a_rule_is_not_credited_with_words_the_model_already_gets_right(bpe):
    # "a~~" is wrong and holds a run of "~", but is two pre-tokens the rule leaves alone; the run is right already
    bare = bare_model(bpe)
    words = ["a~~", "~" * 14]
    gold = [e.ids for e in bare.encode_batch(words)]
    settings = fast_settings(split_rule_chars="", split_rule_min_fixed=10)
    kept, considered = select_split_rules(bare, WrongOn(bare, ["a~~"]), words, np.array([12.0, 20.0]), gold, settings)
    (entry,) = [c for c in considered if c["char"] == "~"]
    assert not kept and entry["fixed_types"] == 0 and not entry["accepted"]


def test_a_rule_that_breaks_a_fit_word_is_refused_however_many_it_fixes(bpe):
    # the rule fixes the run and cuts "(" off "(~~~~~", which the model then gets wrong; no pure run holds "("
    bare = bare_model(bpe)
    words = ["~" * 14, "(~~~~~"]
    gold = [e.ids for e in bare.encode_batch(words)]
    settings = fast_settings(split_rule_chars="", split_rule_min_fixed=10)
    model = WrongOn(bare, ["~" * 14, "("])
    kept, considered = select_split_rules(bare, model, words, np.array([20.0, 1.0]), gold, settings)
    (entry,) = [c for c in considered if c["char"] == "~"]
    assert not kept and (entry["fixed_types"], entry["broken_types"], entry["broken_runs"]) == (1, 1, 0)


def test_a_rule_fixing_exactly_the_occurrences_asked_for_is_kept():
    assert earns_a_rule(False, [0, 1], 10.0, fast_settings(split_rule_min_fixed=10))


def test_words_holding_a_run_of_a_multi_byte_character_are_found():
    box = text_to_piece("─")  # three byte-level characters, none of them twice in a row
    assert words_with_runs(["a" + box * 2, box + "x" + box, "xaay"], [box]) == {box: [0], "a": [2]}


def test_no_rule_is_built_for_a_run_bpe_never_outputs(bpe):
    # behind isolated digits "00" is never output: a rule for runs of "0" would cut what no text holds
    bare = bare_model(bpe)
    settings = fast_settings(split_rule_chars="0")
    _, considered = select_split_rules(bare, bare, [], np.zeros(0), [], settings, frozenset({"00"}))
    assert "0" not in {c["char"] for c in considered}
    _, considered = select_split_rules(bare, bare, [], np.zeros(0), [], settings)
    assert "0" in {c["char"] for c in considered}

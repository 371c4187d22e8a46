"""GPT-2's pre-tokenizer regex with the split and word rules spliced in, and the pre-tokens it cuts.

The rules are written for the regex over text (``rules_pre_tokenizer``), one regex pass per text as for BPE.
The saved tokenizer runs that regex rewritten for byte-level text behind the ``ByteLevel`` normalizer
(``with_rules``, ``byte_level_regex``), which cuts the same pre-tokens for fewer instructions than mapping each
pre-token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers

from ivr.tokenizers.byte_level import byte_to_char, piece_to_bytes, text_to_piece, whole_text
from ivr.tokenizers.byte_level_regex import byte_level_regex, isolated_digits
from ivr.tokenizers.distill.gpt2_regex import CLASS_RX, CONTRACTION, rx
from ivr.tokenizers.distill.word_rules import word_rule_pattern
from ivr.tokenizers.io import byte_level_tokenizer


def split_pattern(rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = ()) -> str:
    """GPT-2's pre-tokenizer regex with the rules' alternatives ahead of the class each rule cuts.

    Every alternative of a rule's ``pattern`` and ``after_space`` starts with two of its characters (after a
    space for the latter), so each class's rules sit behind one lookahead for a doubled rule character: a
    position where no rule applies (nearly every word start) costs a character comparison or two, not one test
    per rule. Every alternative of a class, word rules included, needs two characters of the class after GPT-2's
    optional space (but a word rule's one-character final quote), so a pre-token of one character (most
    punctuation of code: ``(``, ``,``, ``.``) skips all of them with one failed test. The ``word_rules`` (BPE
    pieces of whole words, ``word_rules.word_rule_pattern``) come first in their class, behind a lookahead of
    their own: they only match inside their own word.
    """

    def chars(members: list[dict]) -> str:
        return "".join(rx(piece_to_bytes(r["char"]).decode("utf-8")) for r in members)

    def group(members: list[dict], words: tuple[str, str] | None) -> str:
        # the word rules come first since they only match inside their own word; their guards (a word's first
        # characters) and the split rules' (a doubled rule character, after a space or not) stay two lookaheads:
        # one lookahead on both took 1.7% more instructions to encode (benchmarks/encode_instructions.py)
        out = words[0] + "|" if words else ""
        plain = [r["pattern"] for r in members if r.get("pattern")]
        spaced = [r["after_space"] for r in members if r.get("after_space")]
        if plain or spaced:
            lead = r"\x{20}?+" if spaced else ""
            alts = plain + ([f"\\x{{20}}(?:{'|'.join(spaced)})"] if spaced else [])
            out += f"(?={lead}{doubled(members)})(?:{'|'.join(alts)})|"
        return out

    def doubled(members: list[dict]) -> str:
        # one character doubled is a literal (the newline rule: 0.4% fewer instructions); of several, a
        # backreference to the one just seen. Every capture group costs every regex search, so the digits, whose
        # few multi-digit pre-tokens may as well try their ten rules, take two of any rule digit (4.6M fewer
        # encode instructions; for letters and punctuation the wider test costs more than the group)
        if len({r["char"] for r in members}) == 1:
            return chars(members[:1]) * 2
        if members[0]["class"] == "digit":
            return f"[{chars(members)}]" * 2
        name = f"g{len(names)}"
        names.append(name)
        return f"(?<{name}>[{chars(members)}])\\k<{name}>"

    names: list[str] = []
    words = word_rule_pattern(word_rules)
    classes = {"letter": ("letter",), "digit": ("digit",), "punct": ("punct", "quote"),
               "space": ("newline", "space", "tab", "white")}
    by = {k: group([r for r in rules if r["class"] in ks], words.get(k)) for k, ks in classes.items()}
    # the white space before a run of white space (a newline and the indentation after it), cut off as BPE cuts it
    # (where a piece joins them) or where no piece joins them, so that the run starts a pre-token; after the rules,
    # so that a run of newlines is still cut by its own
    by["space"] += "".join(r[key] + "|" for key in ("white_led", "white_before") for r in rules if r.get(key))
    # a prefix alternative is one character and then a run of its rule's character: the same doubled-character
    # lookahead, one position on, keeps the lazy scan over a punctuation pre-token at one test per position, and
    # the scan is skipped for the one- and two-character punctuation of code (it needs three: p and a run). Inside
    # a run (p the run's character) no prefix alternative can match: one backreference skips them all
    with_prefix = [r for r in rules if r.get("prefix")]
    if with_prefix:
        by["punct"] += (r"(?=\x{20}?+[^\s\p{L}\p{N}]{3}) ?[^\s\p{L}\p{N}]*?"
                        + f"(?=.(?<q>[{chars(with_prefix)}])\\k<q>)(?!\\k<q>)(?:"
                        + "|".join(r["prefix"] for r in with_prefix) + ")|")
    # letters first: most pre-tokens are words, and no letter alternative can match where a contraction starts,
    # so trying them before the contractions changes no match (encoding measured about 1.5% faster). The rules of
    # punctuation cannot match there either, except a word rule's final quote, which must take precedence: cut off
    # from its word, it must not join the letters after it (a contraction in "!).'''s"). Digits, which no other
    # alternative matches, come after punctuation, four times as common in the benchmark's sample
    # a lookahead for two characters of the class (or a space and one) keeps the other classes (and white space:
    # indentation, newlines) and the class's one-character pre-tokens (87% of punctuation pre-tokens in the
    # benchmark's sample) from walking through each of its rules' lookaheads
    def behind(cls: str, alts: str) -> str:
        single = words[cls][1] if cls in words else ""
        test = rf"[\x{{20}}{CLASS_RX[cls]}]{CLASS_RX[cls]}" + (f"|{single}" if single else "")
        return f"(?={test})(?:{alts[:-1]})|" if alts else ""

    return (
        behind("letter", by["letter"]) + f" ?{CLASS_RX['letter']}+|" + behind("punct", by["punct"]) + CONTRACTION + "|"
        + f" ?{CLASS_RX['punct']}+|" + behind("digit", by["digit"]) + f" ?{CLASS_RX['digit']}+|" + by["space"]
        + r"\s+(?!\S)|\s+"
    )


def rules_pre_tokenizer(rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = ()):
    """GPT-2's byte-level pre-tokenizer, with the split and word rules spliced into its regex when there are any.

    This form reads text, as the rules are written; the saved tokenizer runs the same regex in byte-level form
    (``with_rules``), which cuts the same pre-tokens for fewer instructions."""
    if not rules and not word_rules:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern(rules, word_rules)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def with_rules(
    model_tok: Tokenizer, rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = (), source: Tokenizer | None = None,
    isolated_digits: bool = False, keep_pre_tokenizer: bool = False, run_cuts: pre_tokenizers.Split | None = None,
) -> Tokenizer:
    """The full tokenizer: ``model_tok``'s model behind GPT-2's pre-tokenizer carrying the split and word rules.

    The ``ByteLevel`` normalizer maps the whole text to byte-level characters at once and one ``Split`` cuts it
    with ``split_pattern`` rewritten for that alphabet (``byte_level_regex``): the pre-tokens of
    ``rules_pre_tokenizer``, without the copies that mapping each pre-token on its own makes. With
    ``isolated_digits`` a ``Split`` first puts the bytes of every digit on their own (``digit_split``), and the
    rules' regex then cuts each stretch between digits on its own, as the source's does. With
    ``keep_pre_tokenizer`` (``SourceBPE.rules`` false: no rules) the tokenizer runs ``source``'s own pre-tokenizer
    as it is, then ``run_cuts`` (``run_cuts.run_cut_split``) where given. ``source``'s normalizer (NFC in GPT-NeoX
    and Qwen2) runs first either way. The added tokens, decoder and post-processor are ``source``'s (else
    ``model_tok``'s, or GPT-2's for a bare model), so that added tokens keep their ids and flags and decoding is the
    source's."""
    shell = source or (model_tok if model_tok.decoder is not None else byte_level_tokenizer(model_tok.model))
    tok = Tokenizer(model_tok.model)
    # a copy where its parts are taken: the source's objects stay its own
    copy = Tokenizer.from_str(source.to_str()) if source is not None and (
        keep_pre_tokenizer or source.normalizer is not None) else None
    own = copy.normalizer if copy is not None else None
    if keep_pre_tokenizer:
        if copy is None:
            raise ValueError("keeping the source's own pre-tokenizer needs the source")
        if rules or word_rules:
            raise ValueError("a source's own pre-tokenizer is kept without split or word rules")
        if own is not None:
            tok.normalizer = own
        steps = [copy.pre_tokenizer] + ([run_cuts] if run_cuts is not None else [])
    else:
        if run_cuts is not None:
            raise ValueError("run cuts follow a kept pre-tokenizer; GPT-2's regex carries split rules")
        tok.normalizer = normalizers.ByteLevel() if own is None else normalizers.Sequence([own, normalizers.ByteLevel()])
        steps = [digit_split()] if isolated_digits else []
        steps.append(pre_tokenizers.Split(Regex(byte_level_regex(split_pattern(rules, word_rules))), behavior="isolated"))
    missing = "".join(c for c in byte_to_char().values() if tok.token_to_id(c) is None)
    if missing:
        # BPE drops a byte its vocabulary lacks (SmolLM2 has no 0x04) where a Unigram would fail: cut it out
        steps.append(pre_tokenizers.Split(Regex("[" + "".join("\\x{%X}" % ord(c) for c in missing) + "]"), "removed"))
    tok.pre_tokenizer = steps[0] if len(steps) == 1 else pre_tokenizers.Sequence(steps)
    tok.decoder, tok.post_processor = shell.decoder, shell.post_processor
    for _, t in sorted(shell.get_added_tokens_decoder().items()):
        # matched as in the source: on the raw text where the source has no normalizer (ours maps bytes), on the
        # normalized text where it has one and normalizes the token (its content goes through ours too). A token
        # that ours would map to other characters (a space, non-ASCII) is matched on the raw text even then: its
        # mapped form would be its id's piece, which decode(..., skip_special_tokens=True) then keeps. The one
        # difference: text that only the source's normalizer turns into the token (NFC of a decomposed accent).
        normalized = t.normalized and (keep_pre_tokenizer or (own is not None and text_to_piece(t.content) == t.content))
        added = AddedToken(t.content, single_word=t.single_word, lstrip=t.lstrip, rstrip=t.rstrip,
                           normalized=normalized, special=t.special)
        (tok.add_special_tokens if t.special else tok.add_tokens)([added])
    return tok


def digit_split() -> pre_tokenizers.Split:
    """``Digits(individual_digits=True)`` for byte-level text: the bytes of every character it isolates, on their
    own. ``Digits`` itself cannot run there: ``²`` (U+00B2) is also the byte-level character of byte 0xB2, the
    second byte of ``ò``. The class is rewritten by ``byte_level_regex``, so it matches only where a character
    starts."""
    spans = "".join("\\x{%X}-\\x{%X}" % span for span in isolated_digits())
    return pre_tokenizers.Split(Regex(byte_level_regex(f"[{spans}]")), behavior="isolated")


def segment_words(rules: Sequence[dict], words: Sequence[str], word_rules: Sequence[Sequence[str]] = ()) -> list[list[str]]:
    """Each byte-level word as the rules cut it on its own (a word GPT-2 would pre-tokenize further stays whole)."""
    if not rules and not word_rules:
        return [[w] for w in words]
    plain, cut = rules_pre_tokenizer([]), rules_pre_tokenizer(rules, word_rules)
    # a split rule needs its character twice in a row: one search for all of them (words number in the millions)
    doubled = re.compile("|".join(sorted(re.escape(r["char"] * 2) for r in rules))) if rules else None
    listed = {"".join(pieces) for pieces in word_rules}
    out = []
    for w in words:
        segs = [w]
        if w in listed or (doubled is not None and doubled.search(w)):
            text = whole_text(w)
            if text is not None and [p for p, _ in plain.pre_tokenize_str(text)] == [w]:
                segs = [p for p, _ in cut.pre_tokenize_str(text)]
        out.append(segs)
    return out


def encode_segments(model_tok: Tokenizer, segments: Sequence[Sequence[str]]) -> list[list[int]]:
    """Model-only ids of each segmented word: its segments encoded on their own, concatenated."""
    flat = sorted({s for segs in segments for s in segs})
    ids = dict(zip(flat, (e.ids for e in model_tok.encode_batch(flat))))
    return [[i for s in segs for i in ids[s]] for segs in segments]

"""Word rules: whole pre-tokens that scores and run rules leave wrong, cut at BPE's own token boundaries.

Some words no additive scores can segment as BPE does (``0477`` is ``0 · 477`` while other digit strings
force ``04`` above ``0``), and some are ties the run rules do not reach. For each such fit word the pre-tokenizer
regex gets alternatives that match one BPE token of it at a time, each only where the whole pre-token is that
word: the characters before and after it are checked to be where GPT-2's regex starts and ends that pre-token.
Every piece of the cut word is then one vocabulary token, which the Unigram gives back alone. The regex
alternatives of one class share tries over their literal text (one for the rests after a leading space, one for
those starting a pre-token without one, one for those inside a word), each behind a guard of character classes:
a failed alternative costs the regex engine some fifty instructions, a failed character class a few.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ivr.tokenizers.byte_level import whole_text
from ivr.tokenizers.distill.gpt2_regex import CLASS_RX, gpt2_class, rx


MAX_WORD_CHARS = 64
"""The longest word (in characters, its leading space included) a word rule is built for. A rule's regex grows
with its word (literals in lookbehinds, a trie path per character), so this and ``DistillSettings.word_rules``
bound the regex and ``tokenizer.json`` whatever the corpus holds; longer pre-tokens (a base64 blob, a run in
minified code) are rare and left to the scores. The demo's longest word rule cuts 33 characters."""


def word_segments(pieces: Sequence[str]) -> tuple[str, list[str]] | None:
    """The class and the text of each BPE token of a word, when a regex can cut it there: at least two tokens,
    each whole characters, making one pre-token of one class (with GPT-2's optional leading space), of at most
    ``MAX_WORD_CHARS`` characters."""
    if sum(len(p) for p in pieces) > 4 * MAX_WORD_CHARS:  # a byte-level piece holds up to 4 characters per one
        return None
    segs = [whole_text(p) for p in pieces]
    if None in segs:
        return None
    text = "".join(segs)
    if len(text) > MAX_WORD_CHARS:
        return None
    core = text[1:] if text.startswith(" ") else text
    classes = {gpt2_class(ch) for ch in core}
    if len(segs) < 2 or not core or len(classes) != 1 or None in classes or "" in segs:
        return None
    return classes.pop(), segs


def _trie(entries: Sequence[tuple[str, str]]) -> str:
    """One regex for ``literal + tail`` over all entries, sharing the literals' common prefixes (it recurses once
    per character: literals are parts of words of at most ``MAX_WORD_CHARS``)."""
    tails = sorted({tail for literal, tail in entries if not literal})
    heads: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for literal, tail in entries:
        if literal:
            heads[literal[0]].append((literal[1:], tail))
    alts = [rx(ch) + _trie(rest) for ch, rest in sorted(heads.items())] + tails
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _product(heads: set[str]) -> str:
    """A cheap test that holds before each of the ``heads`` (the rests of listed words): a character class for each
    of their first three characters (fewer where a rest is shorter), and the one-character rests (a final quote)
    as one class of their own. A failed character class costs a few instructions, a failed alternative of the
    trie behind it some fifty (benchmarks/encode_instructions.py), so the guard keeps the trie from most pre-tokens."""
    longer = [h for h in heads if len(h) > 1]
    parts = []
    if longer:
        n = min(3, min(len(h) for h in longer))
        parts.append("".join("[" + "".join(rx(c) for c in sorted({h[i] for h in longer})) + "]" for i in range(n)))
    singles = _single_heads(heads)
    return "|".join(parts + ([singles] if singles else []))


def _single_heads(heads: set[str]) -> str:
    """A character class of the one-character heads (a word's final quote), or "" when there are none."""
    singles = "".join(rx(c) for c in sorted({h for h in heads if len(h) == 1}))
    return f"[{singles}]" if singles else ""


def word_rule_pattern(words: Sequence[Sequence[str]]) -> dict[str, tuple[str, str]]:
    """Per class, a regex that matches the next BPE token of any of the ``words`` (each a list of BPE pieces,
    checked by ``word_segments``) where the pre-token around it is that word, as guarded tries (``_product``),
    and a character class of the one-character rests (a final quote), empty when there are none: every other
    rest holds at least two characters of the class after GPT-2's optional space.

    Each goes first among its class's alternatives: where it matches, GPT-2's regex would start (or a split
    rule has cut) that very pre-token.
    """
    cuts: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    for pieces in words:
        found = word_segments(pieces)
        if found is None:
            raise ValueError(f"a word rule needs a one-class word cut at whole characters: {pieces!r}")
        cls, segs = found
        # the last token needs no alternative, as GPT-2's own class alternative takes it to the pre-token's end,
        # unless it starts with a quote: cut off from the run before it, "'" + "s" would make a contraction
        for i, seg in enumerate(segs if segs[-1].startswith("'") else segs[:-1]):
            cuts[cls][("".join(segs[:i]), seg)].add("".join(segs[i + 1 :]))
    out = {}
    for cls, by_cut in cuts.items():
        # three parts, each behind its own guard: rests after GPT-2's leading space, rests that start a pre-token
        # without one, and rests inside a word, which follow one of a few characters (a cut in a class's run is
        # rare, so that lookbehind fails at nearly every pre-token). A trie over all would walk the letters'
        # branches for every spaced word that passes the guard, and the other way round
        parts: dict[str, list] = {"spaced": [], "start": [], "inner": []}
        for (before, seg), afters in sorted(by_cut.items()):
            part = "inner" if before else "spaced" if seg.startswith(" ") else "start"
            heads = {seg + a for a in afters}
            behind = f"(?<={rx(before + seg)})" if before else ""
            # the pre-token starts at a leading space, or where neither its class nor a space (which GPT-2 would
            # have joined to it) comes before. The byte-level rewrite spells a class in up to 19,500 characters,
            # so the check is shared where it can be: once for every first token (at the part's guard) and once
            # per length of the ASCII text before an inner token (its characters are known from ``behind``);
            # other inner tokens check behind themselves once they have matched
            shared = part == "start" or (part == "inner" and before.isascii() and not before.startswith(" "))
            start = "" if (before + seg).startswith(" ") or shared else (
                f"(?<!{CLASS_RX[cls]}{rx(before + seg)}|\\x{{20}}{rx(before + seg)})")
            group = len(before) if part == "inner" and shared else None  # None: no shared check
            tail = behind + start + f"(?={_trie([(a, '') for a in afters])}(?!{CLASS_RX[cls]}))"
            parts[part].append((before[-1:], heads, group, (seg, tail)))
        alts, all_heads = [], set()
        for name, members in parts.items():
            if not members:
                continue
            heads = set().union(*(h for _, h, _, _ in members))
            all_heads |= heads
            gate = f"(?={_product(heads)})"
            if name == "start":
                gate += f"(?<!{CLASS_RX[cls]}|\\x{{20}})"
            if name == "inner":
                # the characters first, then the one before: a spaced word fails the first class at its space
                gate += f"(?<=[{''.join(rx(c) for c in sorted({b for b, _, _, _ in members}))}])"
                groups = []
                for n in sorted({g for _, _, g, _ in members}, key=lambda g: -1 if g is None else g):
                    entries = [e for _, _, g, e in members if g == n]
                    check = "" if n is None else f"(?<!{CLASS_RX[cls]}[\\x00-\\x7f]{{{n}}}|\\x{{20}}[\\x00-\\x7f]{{{n}}})"
                    groups.append(check + _trie(entries))
                alts.append(gate + (groups[0] if len(groups) == 1 else "(?:" + "|".join(groups) + ")"))
                continue
            alts.append(gate + _trie([e for _, _, _, e in members]))
        out[cls] = ("|".join(alts), _single_heads(all_heads))
    return out

"""Split rules: regex alternatives that cut runs of one character into BPE's chunks.

Ties (the same pieces in another order, mostly runs of one character) cannot be broken by any scores: HF
Unigram keeps the longest last piece while BPE puts its long chunks first. A split rule, derived from BPE's
chunking of pure runs and of runs next to their neighbours, is spliced into GPT-2's own pre-tokenizer regex
(``pre_tokenizer.split_pattern``), so the Unigram only ever sees the chunks. Each rule asks BPE itself about
every run length and neighbour, and cuts only where BPE never merges across the cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer

from ivr.tokenizers.bpe import bpe_merges
from ivr.tokenizers.byte_level import piece_to_bytes, run_length, text_to_piece, utf8_or_none, whole_text
from ivr.tokenizers.byte_level_regex import normalise_ranges
from ivr.tokenizers.distill.gpt2_regex import CONTRACTION, gpt2_class, rx
from ivr.tokenizers.distill.white_runs import (
    WHITE_RUN_CHARS,
    joined_white,
    kept_apart,
    lead_trie,
    led_rests as white_led_rests,
    other_white,
    white_before,
    white_run_end,
)

# where the pre-token a run of letters or digits ends: GPT-2's class of the run's character no longer continues
# it (punctuation and quote runs end where BPE keeps them apart from what follows: ``_run_end``; white space where
# GPT-2's regex ends its pre-token or BPE never merges it with what follows: ``white_runs.white_run_end``)
RUN_END = {"letter": r"(?!\p{L})", "digit": r"(?!\p{N})"}


def run_chunks(bare_bpe: Tokenizer, char: str, max_run: int) -> list[list[int]] | None:
    """BPE's chunk lengths, in characters, for runs of ``char`` of length 0..max_run (index = run length);
    None when BPE cuts a multi-byte character apart somewhere (no regex can cut there)."""
    encs = bare_bpe.encode_batch([char * n for n in range(1, max_run + 1)])
    chunks = [[run_length(t, char) for t in e.tokens] for e in encs]
    return None if any(None in ch for ch in chunks) else [[]] + chunks


def ranges(values: Iterable[int]) -> list[tuple[int, int]]:
    """Integers (code points, run lengths) as sorted ranges of consecutive values."""
    return list(normalise_ranges((v, v) for v in values))


def repeat(c: str, lo: int, hi: int) -> str:
    if hi == lo:
        return f"{c}{{{lo}}}" if lo != 1 else c
    return f"{c}{{{lo},{hi}}}"


def _char_class(raw: str) -> str | None:
    if raw in WHITE_RUN_CHARS:
        return WHITE_RUN_CHARS[raw]
    if raw in other_white():
        return "white"
    if raw == " ":
        return "space"
    if raw == "'":
        return "quote"
    return gpt2_class(raw)


# how far from a cut what follows a run is still asked about: the neighbour's continuations up to SHORT_RUN,
# the neighbour itself up to MEDIUM_RUN (BPE pairs a run from its left end: beyond that the end cannot move a
# cut at its start; checked on random strings by benchmarks/split_rule_exactness.py)
SHORT_RUN = 4
MEDIUM_RUN = 16
ASCII_PUNCT = "".join(chr(i) for i in range(33, 127) if not chr(i).isalnum())
# the classes of white-space runs, whose ends and leads ``white_runs`` decides
WHITE_KINDS = ("space", *WHITE_RUN_CHARS.values(), "white")


def is_one_character(piece: str) -> bool:
    return len(whole_text(piece) or "") == 1


def is_punctuation(piece: str) -> bool:
    """Whether the byte-level ``piece`` is non-empty ASCII punctuation (it can continue a punctuation pre-token);
    byte-level pieces write these bytes as themselves."""
    return bool(piece) and all(ch in ASCII_PUNCT for ch in piece)


def piece_text(piece: str) -> str:
    """The text of a byte-level piece of whole characters."""
    return piece_to_bytes(piece).decode("utf-8")


def is_punctuation_text(piece: str) -> bool:
    """Whether the byte-level ``piece`` is whole characters of GPT-2's punctuation class, ASCII or not (``"…``):
    what may follow a run's neighbour in the same pre-token."""
    text = whole_text(piece)
    return bool(text) and all(gpt2_class(ch) == "punct" for ch in text)


def _run_end(c: str, merging: Sequence[str], blocked: str, quote: bool = False) -> str:
    """Lookahead for the end of a punctuation run: not before ``c`` itself, a neighbour or a neighbour with what
    follows it in ``merging``, a non-ASCII or control character in the class ``blocked`` or a contraction (for a run of
    quotes, the letters that would make its last quote one)."""
    longer = "".join(f"{''.join(rx(ch) for ch in m)}|" for m in merging if len(m) > 1)
    contraction = CONTRACTION[1:] if quote else CONTRACTION
    return (f"(?![{c}{''.join(rx(r) for r in merging if len(r) == 1)}]|{longer}"
            f"{f'[{blocked}]|' if blocked else ''}{contraction})")


def _classrx(code_points: Iterable[int]) -> str:
    """The body of a regex character class holding ``code_points``, as ranges."""
    spans = ranges(list(set(code_points)))
    return "".join(rx(chr(lo)) if lo == hi else f"{rx(chr(lo))}-{rx(chr(hi))}" for lo, hi in spans)


def utf8_prefix_range(prefix: bytes) -> tuple[int, int] | None:
    """The code points whose UTF-8 encoding starts with ``prefix`` (the first bytes of one character)."""
    lead = prefix[0]
    n = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if len(prefix) >= n:
        return None
    # the second byte's range is narrower after these leads (no overlong forms, surrogates, or beyond U+10FFFF)
    lo, hi = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(lead, (0x80, 0xBF))
    low, high = (bytes([lo]), bytes([hi])) if len(prefix) == 1 else (b"", b"")
    pad = n - len(prefix) - len(low)
    first, last = utf8_or_none(prefix + low + b"\x80" * pad), utf8_or_none(prefix + high + b"\xbf" * pad)
    return (ord(first), ord(last)) if first and last else None


# the ASCII characters of GPT-2's punctuation class that are no printable punctuation: the control characters
# (``\s`` takes the tab to the carriage return). Like the characters beyond ASCII, they are neighbours of a run that
# the merge list settles for every run length at once, not BPE asked about each
ASCII_CONTROL = "".join(chr(i) for i in [*range(0x09), *range(0x0E, 0x20), 0x7F])


def _settled_by_merges(byte: int) -> bool:
    """Whether a neighbour starting (or ending) with ``byte`` is one the merge list settles: beyond ASCII or a
    control character."""
    return byte >= 0x80 or chr(byte) in ASCII_CONTROL


def merging_after(char: str, merges: Sequence[tuple[str, str]]) -> list[int]:
    """Code points beyond ASCII punctuation and white space (non-ASCII, or control characters) that BPE may merge
    with the end of a run of ``char``: the first character of each merge's right part whose left part can end such a
    run (every code point its bytes start, for a partial one). Before any other such character a cut is exact: no
    merge can join the run's last token to what follows."""
    out: list[int] = []
    for a, b in merges:
        if not (a.endswith(char) or char.endswith(a)) or not _settled_by_merges((raw := piece_to_bytes(b))[0]):
            continue
        first = next((t for k in range(1, 5) if (t := utf8_or_none(raw[:k])) is not None), None)
        span = (ord(first), ord(first)) if first else utf8_prefix_range(raw)
        if span:
            out.extend(range(span[0], span[1] + 1))
    return out


def joined_before(char: str, merges: Sequence[tuple[str, str]]) -> list[str] | None:
    """The non-ASCII and control characters that a merge may join to the start of a run of ``char``: the last
    character of each merge's left part whose right part starts the run. Before any other character of GPT-2's
    punctuation class beyond ASCII punctuation (an emoji, ``★``, ``€``, a guillemet, ``：``, a control character) a
    cut is exact. None where such a left part is only the last bytes of a character: every character ending in them
    would be joined, which no short class can say."""
    out = set()
    for a, b in merges:
        if not (b.startswith(char) or char.startswith(b)) or not _settled_by_merges((raw := piece_to_bytes(a))[-1]):
            continue
        last = next((t for k in range(1, 5) if len(t := utf8_or_none(raw[-k:]) or "") == 1), None)
        if last is None:
            return None
        out.add(last)
    return sorted(out)


# GPT-2's punctuation class beyond ASCII punctuation (the control characters and all beyond ASCII): what may stand
# right before a run in its pre-token besides ASCII punctuation. Its multi-byte form is the class's own (a group the
# regex calls), behind a lookahead for a lead byte. A control character the vocabulary lacks is left out (BPE drops
# it and merges across it)
OTHER_PUNCT = r"[^\s\p{L}\p{N}\x{20}-\x{7E}%s]"


def _token_ends(bare_bpe: Tokenizer, texts: Iterable[str]) -> dict[str, set[int]]:
    """Where BPE's tokens of each byte-level text end. A token ends at ``i`` exactly when BPE segments the text
    as its first ``i`` characters and the rest apart: merges only join, so none joined across ``i``, and each
    side then merged as it would alone (in the same order, the lowest rank and leftmost first)."""
    ordered = sorted(set(texts))
    return {t: {end for _, end in e.offsets} for t, e in zip(ordered, bare_bpe.encode_batch(ordered))}


def _cuts_hold(bare_bpe: Tokenizer, cases: dict) -> dict:
    """For each key, whether BPE segments every ``(left, right)`` pair as ``left`` and ``right`` apart."""
    ends = _token_ends(bare_bpe, (a + b for pairs in cases.values() for a, b in pairs))
    return {key: all(len(a) in ends[a + b] for a, b in pairs) for key, pairs in cases.items()}


def _grouped(items: Sequence, key) -> list[tuple]:
    """``items`` grouped by ``key(item)``, as sorted ``(key, items)`` pairs."""
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return sorted(groups.items())


def _merged_end_cuts(bare_bpe: Tokenizer, char: str, c: str, chunks: list[list[int]], right: Sequence[str],
                     conts: dict[str, list[str]], chunk_ok: dict, whole_ok: dict) -> list[str]:
    """Alternatives for runs whose end BPE merges with the character after them (13 dashes and ``+`` give
    ``------------`` ``-+``): cut off BPE's first chunk there when BPE agrees for the neighbour alone and every
    token-completing continuation in ``conts``. What follows the neighbour decides more often here (``((``
    ``'.`` but ``(`` ``('``), so BPE is also asked for each ASCII punctuation character after the neighbour, and
    those it disagrees on (more of the run among them: three double quotes and ``'`` give ``""`` ``"'``, but three and ``'"`` give
    the three and ``'"``) are excluded by a
    negative lookahead."""
    blocked = [(n, r) for n in range(2, len(chunks)) for r in right
               if not (whole_ok[(n, r, "")] if len(chunks[n]) == 1 else chunk_ok[("", chunks[n][0], n - chunks[n][0], r, "")])]
    after = [text_to_piece(p) for p in ASCII_PUNCT]
    heads = {(n, r): e.tokens[0] for (n, r), e in zip(blocked, bare_bpe.encode_batch(
        [char * n + text_to_piece(r) for n, r in blocked]))}
    cands = {key: a for key, h in heads.items() if (a := run_length(h, char)) and a < key[0]}
    ends = _token_ends(bare_bpe, (char * n + text_to_piece(r) + e for (n, r) in cands for e in [*conts[r], *after]))

    def holds(n: int, r: str, a: int, e: str) -> bool:
        return len(char) * a in ends[char * n + text_to_piece(r) + e]

    cuts = []
    for (n, r), a in cands.items():
        if holds(n, r, a, ""):
            bad = tuple(piece_text(e) for e in sorted({*after, *conts[r][1:]}) if not holds(n, r, a, e))
            cuts.append((a, n - a, bad, r))
    alts = []
    for (a, k, bad), group in _grouped(cuts, lambda cut: cut[:3]):
        rs = "".join(rx(r) for *_, r in group)
        singles = "".join(rx(p) for p in bad if len(p) == 1)
        longer = [''.join(rx(ch) for ch in p) for p in bad if len(p) > 1]
        not_after = f"(?!{'|'.join(([f'[{singles}]'] if singles else []) + longer)})" if bad else ""
        alts.append(f"{repeat(c, a - 1, a - 1) if a > 1 else ''}(?={repeat(c, k, k)}[{rs}]{not_after})")
    return alts


def split_rule_for(
    bare_bpe: Tokenizer, char: str, max_run: int, merges: Sequence[tuple[str, str]] | None = None
) -> dict | None:
    """Regex alternatives cutting runs of ``char`` that start a pre-token into BPE's chunks, or None.
    ``merges`` are ``bare_bpe``'s (read from it when not given).

    BPE chunks a run of length n as [a(n)] + chunks(n - a(n)) (checked here, else no rule). The alternatives
    are spliced into GPT-2's pre-tokenizer regex ahead of the class the character belongs to, so they are only
    tried where a pre-token starts (one regex pass per text, no lookbehind): at the start of a run of n they
    match the first chunk ``c{a(n)}``; the rest of the run then starts the next pre-token and is cut the same
    way. A cut is only made where BPE does not merge across it: a punctuation run must end before a character
    that BPE, asked for each run length, keeps apart from the run (``-+`` merges after some lengths of ``-``
    and not others); letters, digits and quotes must end their pre-token. Punctuation runs later in a
    punctuation pre-token (``+----``) are reached by a ``prefix`` alternative that cuts off what comes before
    the run, for the run lengths at which BPE keeps the character before the run apart from it (or does so only
    when a space starts the pre-token: then behind a lookbehind for the space). Next to non-ASCII
    punctuation or a control character (before or after: an emoji, ``★``, a table's ``┌``, ``\x1c``) the merge list
    decides instead, for all run
    lengths at once: a cut is made where no merge can join the two sides. A multi-byte character (``─``) gets
    a rule where BPE chunks its runs on character boundaries.
    A run after a space gets ``after_space`` alternatives: BPE's first chunk there is the space with ``a``
    characters of the run (``a`` may be 0), the rest is chunked like a pure run. Anything else (run lengths
    where BPE does not chunk this way, runs longer than ``max_run``) is left to GPT-2's own alternatives. The
    rules of white space (spaces, newlines, tabs) end their runs where ``white_runs.white_run_end`` says, and cut
    the white space before a run off as ``white_runs`` decides (``white_led``, ``white_before``).
    """
    raw = whole_text(char) or ""
    kind = _char_class(raw) if len(raw) == 1 else None
    chunks = run_chunks(bare_bpe, char, max_run) if kind else None
    if chunks is None:
        return None
    rests: dict[int, list[int]] = {}
    whole: list[int] = []
    for n, ch in enumerate(chunks):
        if len(ch) > 1:
            if ch[1:] != chunks[n - ch[0]]:
                return None
            rests.setdefault(ch[0], []).append(n - ch[0])
        elif n >= 2:
            whole.append(n)
    if not rests:
        return None
    # a run after a space: BPE's first chunk takes the space and ``a`` characters (``a`` may be 0; the chunk may
    # be more than one token, as " ─" is "ĠâĶ" "Ģ"), the rest of the run is chunked like a pure run; lengths where
    # that does not hold are left to GPT-2's alternatives
    led_rests: dict[int, list[int]] = {}
    for n, enc in enumerate(bare_bpe.encode_batch(["Ġ" + char * n for n in range(1, max_run + 1)]), 1):
        heads = ["".join(enc.tokens[: j + 1]) for j in range(len(enc.tokens))]
        j, a = next(((j, a) for j, h in enumerate(heads) if (a := run_length(h[1:], char)) is not None), (0, None))
        if a is not None and a < n and enc.tokens[j + 1 :] == [char * k for k in chunks[n - a]]:
            led_rests.setdefault(a, []).append(n - a)
    c = rx(raw)
    merges = bpe_merges(bare_bpe) if merges is None else merges
    ascii_chars = lambda chars: sorted(  # noqa: E731
        {piece_to_bytes(ch).decode("latin-1") for ch in chars} & set(ASCII_PUNCT + " \t\n")
    )
    # which neighbours BPE never merges across a cut is asked of BPE itself, per run length
    # for a multi-byte character, also merges that take only its last bytes (or, on the left, its first bytes)
    ends = [char[k:] for k in range(len(char))]
    starts = [char[:k] for k in range(1, len(char) + 1)]
    # white space never follows a punctuation run in its pre-token (GPT-2's regex gives it to the next word), so a
    # merge of the run's end with a space (DeepSeek-Coder's ``>Ġ``) cannot join them: it must not move a cut
    right = [r for r in ascii_chars({b[0] for a, b in merges if a.endswith(tuple(ends)) and not b.startswith(char)})
             if not r.isspace()] if kind in ("punct", "quote") else []
    # what may follow a neighbour in a punctuation pre-token: more of the run, and the rest of every token that
    # starts with the neighbour (``=\\"`` after a run of ``=``; ``://`` keeps ``))`` whole before ``:``), or with
    # the run's character and the neighbour (SmolLM2's ``('_`` takes a run's last ``(`` only before ``_``)
    punct_tokens = [t for t in bare_bpe.get_vocab() if is_punctuation_text(t)] if right else []
    rp = {r: text_to_piece(r) for r in right}
    conts = {r: ["", char, char * 2, char * 3] + sorted({t[len(h):] for t in punct_tokens for h in (p, char + p)
                                                         if t.startswith(h) and t != h})
             for r, p in rp.items()}
    # BPE is asked about what follows a neighbour only where the neighbour alone keeps the cut
    cuts_in_runs = [(lead, a, k) for lead, by_a in (("", rests), ("Ġ", led_rests)) for a, ks in by_a.items() for k in ks]
    chunk_ok = _cuts_hold(bare_bpe, {(lead, a, k, r, ""): [(lead + char * a, char * k + rp[r])]
                                     for lead, a, k in cuts_in_runs for r in right})
    chunk_ok |= _cuts_hold(bare_bpe, {(lead, a, k, r, e): [(lead + char * a, char * k + rp[r] + e)]
                                      for lead, a, k in cuts_in_runs for r in right if chunk_ok[(lead, a, k, r, "")]
                                      for e in (conts[r][1:] if k <= SHORT_RUN else [])})
    whole_ok = _cuts_hold(bare_bpe, {(n, r, ""): [(char * n, rp[r])] for n in whole for r in right})
    whole_ok |= _cuts_hold(bare_bpe, {(n, r, e): [(char * n, rp[r] + e)] for n in whole for r in right
                                      if whole_ok[(n, r, "")] for e in conts[r][1:]})

    def merging(ok: dict, key: tuple) -> tuple[str, ...]:
        """What may not follow a run cut as ``key`` says: each neighbour BPE merges with the run's end, and for
        the other neighbours, each continuation after which BPE does."""
        out: list[str] = []
        for r in right:
            # continuations are only asked about after short rests: far from the cut they cannot move it
            out += [r] if not ok[(*key, r, "")] else [r + piece_text(e) for e in conts[r][1:]
                                                       if not ok.get((*key, r, e), True)]
        return tuple(out)

    blocked = _classrx(merging_after(char, merges)) if kind in ("punct", "quote") else ""

    white = kind in WHITE_KINDS
    joined = joined_white(bare_bpe.get_vocab()) if white else frozenset()
    run_end = white_run_end(raw, kept_apart(bare_bpe, raw, max_run, joined)) if white else RUN_END.get(kind, "")

    def end(not_after: Sequence[str]) -> str:
        return _run_end(c, not_after, blocked, kind == "quote") if kind in ("punct", "quote") else run_end

    def first_chunks(lead: str, firsts: dict[int, list[int]], skip: int) -> list[str]:
        """Alternatives matching a run's first chunk (``skip`` characters of it already matched)."""
        alts = []
        for a in sorted(firsts, reverse=True):
            for not_after, ks in _grouped(firsts[a], lambda k: merging(chunk_ok, (lead, a, k))):
                rest = "|".join(repeat(c, lo, hi) for lo, hi in ranges(ks))
                alts.append(f"{repeat(c, a - skip, a - skip) if a > skip else ''}(?=(?:{rest}){end(not_after)})")
        return alts

    alts = first_chunks("", rests, 1)
    if kind in ("punct", "quote") and whole:  # a whole-chunk run followed by more punctuation is cut off as it is
        for not_after, ns in _grouped(whole, lambda n: merging(whole_ok, (n,))):
            alts.append(f"(?:{'|'.join(repeat(c, lo - 1, hi - 1) for lo, hi in ranges(ns))}){end(not_after)}")
    if kind in ("punct", "quote"):
        alts += _merged_end_cuts(bare_bpe, char, c, chunks, right, conts, chunk_ok, whole_ok)
    prefix = None
    if kind in ("punct", "quote"):
        left = ascii_chars({a[-1] for a, b in merges if b.startswith(tuple(starts)) and not a.endswith(char)})
        # what follows the run: nothing, a neighbour, or for short runs a neighbour that a longer token takes
        # (``.`` ``:`` ``://`` but ``.:`` ``://``); in a long run BPE settles the start before the end matters
        tails = [""] + [rp[r] for r in right]
        short_tails = tails + [rp[r] + e for r in right for e in conts[r][4:]]
        # what may stand before the neighbour: the start of every token a merge builds from it and the run (``":[``)
        joining = [a for a, b in merges if b.startswith(tuple(starts))]
        pres = {p: ["", "Ġ"] + sorted({a[:-1] for a in joining
                                       if a.endswith(q) and is_punctuation(a[:-1].lstrip("Ġ"))} - {"", "Ġ"})
                for p in left for q in [text_to_piece(p)]}
        after_run = {n: short_tails if n <= SHORT_RUN else tails if n <= MEDIUM_RUN else [""]
                     for n in range(2, max_run + 1)}
        # BPE is asked about the rest only where the run cuts off after ``p`` alone and after a space and ``p``
        left_ok = _cuts_hold(bare_bpe, {(p, n, pre, ""): [(pre + text_to_piece(p), char * n)]
                                        for p in left for n in after_run for pre in ("", "Ġ")})
        open_cuts = [(p, n) for p in left for n in after_run if left_ok[(p, n, "", "")] and left_ok[(p, n, "Ġ", "")]]
        # where BPE joins ``p`` to the run but first joins a space to ``p`` (SmolLM2's `` #`` before its token of
        # ``#`` and 64 dashes), the cut holds after a space alone, behind a lookbehind
        spaced_open = [(p, n) for p in left if p in ASCII_PUNCT and p != raw for n in after_run
                       if left_ok[(p, n, "Ġ", "")] and not left_ok[(p, n, "", "")]]
        left_ok |= _cuts_hold(bare_bpe, {(p, n, pre, t): [(pre + text_to_piece(p), char * n + t)] for p, n in open_cuts
                                         for pre in pres[p] for t in after_run[n] if pre not in ("", "Ġ") or t}
                              | {(p, n, "Ġ", t): [("Ġ" + text_to_piece(p), char * n + t)] for p, n in spaced_open
                                 for t in after_run[n][1:]})
        # a cut before the run after ``p`` is refused where what stands before ``p`` changes BPE's mind
        # (``'`` ``""`` ``"'`` but ``.'"`` ``""``), by a lookbehind
        not_before = {p: tuple(pre for pre in pres[p][2:] if not all(left_ok[(p, n, pre, t)] for q, n in open_cuts
                                                                     if q == p for t in after_run[n])) for p in left}

        def not_after(p: str, n: int) -> tuple[str, ...] | None:
            """What may not follow a run of ``n`` for a cut before it after ``p`` (None: no cut at all)."""
            if p not in left:
                return ()
            kept = [pre for pre in pres[p] if pre not in not_before[p]]
            if not all(left_ok[(p, n, pre, "")] for pre in kept):
                return None
            return tuple(piece_text(t) for t in after_run[n][1:] if not all(left_ok[(p, n, pre, t)] for pre in kept))

        cuts = {p: {n: ex for n in after_run if (ex := not_after(p, n)) is not None} for p in ASCII_PUNCT if p != raw}
        # after a non-ASCII or control neighbour no merge joins to the run, for every run length at once
        joined_left = joined_before(char, merges)

        spaced: dict[str, dict[int, tuple[str, ...]]] = {}
        for p, n in spaced_open:
            spaced.setdefault(p, {})[n] = tuple(piece_text(t) for t in after_run[n][1:] if not left_ok[(p, n, "Ġ", t)])

        def ahead(run_cuts: dict[int, tuple[str, ...]]) -> str:
            return "|".join(f"(?:{'|'.join(repeat(c, lo, hi) for lo, hi in ranges([n for n, _ in ns]))}){end(ex)}"
                            for ex, ns in _grouped(list(run_cuts.items()), lambda item: item[1]))

        def lookaround(p: str) -> tuple[str, str]:
            behind = "|".join("".join(rx(ch) for ch in piece_text(pre)) for pre in not_before.get(p, ()))
            return f"(?<!{behind})" if behind else "", ahead(cuts[p])

        groups = _grouped([p for p in cuts if cuts[p]], lookaround)
        groups += _grouped(list(spaced), lambda p: (r"(?<=\x{20})", ahead(spaced[p])))
        alts_before = [f"{behind}[{_classrx(ord(p) for p in ps)}](?={ahead})" for (behind, ahead), ps in groups]
        if joined_left is not None:
            barred = [ord(y) for y in {*joined_left, raw} if y not in ASCII_PUNCT]  # a run's own character is no neighbour
            not_joined = f"(?![{_classrx(barred)}])" if barred else ""
            vocab = bare_bpe.get_vocab()
            missing = "".join(rx(y) for y in ASCII_CONTROL if text_to_piece(y) not in vocab)
            alts_before.append(f"{not_joined}{OTHER_PUNCT % missing}(?={ahead(dict.fromkeys(after_run, ()))})")
        prefix = "|".join(alts_before) or None
    # GPT-2 keeps spaces with newlines, and a space before a run of spaces is part of the run; a run of white space
    # after other white space BPE joins to it (SmolLM2's newline and indentation) starts with the lead instead
    led = first_chunks("Ġ", led_rests, 0) if not white else []
    white_led = None
    if white:
        # each lead behind a lookahead for the shortest run it cuts, the leads in a trie: a line's usual
        # indentation fails at a lead's first characters or at its lookahead at once
        branches = {lead: f"(?={c}{{{min(a + min(ks) for a, ks in firsts.items())}}})"
                          f"(?:{'|'.join(first_chunks('', firsts, 0))})"
                    for lead, firsts in white_led_rests(bare_bpe, raw, chunks, max_run, joined).items()}
        white_led = lead_trie(branches) or None
    return {"char": char, "class": kind, "pattern": f"{c}(?:{'|'.join(alts)})", "prefix": prefix,
            "after_space": f"(?:{'|'.join(led)})" if led else None,
            "white_led": white_led, "white_before": white_before(joined, raw, max_run) if white else None}


# a rule depends only on the BPE model, the character and max_run: each process builds it once (tests and
# repeated fits in one session ask for the same rules, at up to 3 s each)
SPLIT_RULE_CACHE: dict[tuple[str, str, int], dict | None] = {}


def memo_split_rule(
    bare_bpe: Tokenizer, fingerprint: str, char: str, max_run: int, merges: Sequence[tuple[str, str]] | None = None
) -> dict | None:
    key = (fingerprint, char, max_run)
    if key not in SPLIT_RULE_CACHE:
        SPLIT_RULE_CACHE[key] = split_rule_for(bare_bpe, char, max_run, merges)
    rule = SPLIT_RULE_CACHE[key]
    return dict(rule) if rule else None

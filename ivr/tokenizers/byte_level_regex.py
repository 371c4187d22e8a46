"""A pre-tokenizer regex over text, rewritten to match the same pre-tokens in the text's byte-level form.

GPT-2's ``ByteLevel`` pre-tokenizer cuts the text with its regex, then maps each pre-token to byte-level
characters on its own. Mapping the whole text once (the ``ByteLevel`` normalizer) and cutting the mapped text
with one regex gives the same pre-tokens for fewer encode instructions, since mapping each pre-token on its
own allocates and copies (figures in the README, from ``benchmarks/encode_instructions.py``). The regex must
then read byte-level characters: every literal becomes the characters of its UTF-8 bytes, and every character
class (``\\p{L}``, ``[^\\s\\p{L}\\p{N}]``, ``.``) an alternation over the byte sequences of its code points, as
a trie by byte.

The rewrite keeps the match of every regex over text: UTF-8 is a prefix-free code, so a rewritten class
matches at most one way where a character starts, and a match starting where a character starts ends where
one starts. Lookarounds, backreferences, groups and quantifiers keep their meaning on whole characters.
The classes are read from the regex engine of the ``tokenizers`` library itself (its Unicode tables), so the
rewrite agrees with GPT-2's regex as this library runs it. The line anchors (``^``, ``$``, ``\\Z``) look for the
byte-level newline. What the rules do not use (numbered backreferences, ``\\b``, ``\\w``, conditionals, class
intersections) is refused with the place it stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from ivr.tokenizers.byte_level import byte_to_char

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)
Ranges = tuple[tuple[int, int], ...]


def normalise_ranges(spans: Iterable[tuple[int, int]]) -> Ranges:
    """Code point ranges sorted, with overlapping and adjacent ones merged."""
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _complement(ranges: Ranges) -> Ranges:
    out, start = [], 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return normalise_ranges(out)


def _planes() -> Iterable[list[int]]:
    """Every code point but the surrogates, a plane at a time: the engines copy what they read, so a text of all
    1.1M code points at once would be copied whole."""
    lo, hi = SURROGATES
    for start in range(0, MAX_CODE_POINT + 1, 1 << 16):
        yield [c for c in range(start, start + (1 << 16)) if not lo <= c <= hi]


def _members(split, chars: list[str]) -> list[bool]:
    """Whether each of ``chars`` stands alone as a pre-token of ``split`` (``Regex``-based or ``Digits``) when the
    characters are written with an ``!`` before and after each: ``!`` is in no class read here, so a character of
    the class forms a pre-token of its own and any other joins the ``!`` around it."""
    text = "!" + "!".join(chars) + "!"
    alone = {a for _, (a, b) in split.pre_tokenize_str(text) if b - a == 1 and text[a] != "!"}
    return [2 * k + 1 in alone for k in range(len(chars))]


@lru_cache(maxsize=1)
def _engine_classes() -> dict[str, Ranges]:
    from tokenizers import Regex, pre_tokenizers

    # one pass over every code point cuts it into runs of one class (or of none); a run's class is then its first
    # character's, read for those few characters alone (three passes over every code point took about 3 s)
    runs_of = pre_tokenizers.Split(Regex(r"\p{L}+|\p{N}+|\s+"), behavior="isolated")
    runs: list[tuple[int, int]] = []
    for codes in _planes():
        text = "".join(map(chr, codes))
        runs += [(codes[a], codes[b - 1]) for _, (a, b) in runs_of.pre_tokenize_str(text)]
    firsts = [chr(a) for a, _ in runs]
    inside = {name: _members(pre_tokenizers.Split(Regex(pattern), behavior="isolated"), firsts)
              for name, pattern in (("L", r"\p{L}"), ("N", r"\p{N}"), ("s", r"\s"))}
    # a run is of one class only where no character is in two, as Unicode's categories are not: checked on the
    # characters read here, each run's first
    if any(sum(member) > 1 for member in zip(*inside.values())):
        raise RuntimeError("the tokenizers regex engine puts a character in two of \\p{L}, \\p{N} and \\s")
    return {name: normalise_ranges(run for run, member in zip(runs, members) if member)
            for name, members in inside.items()}


def engine_class(name: str) -> Ranges:
    """The code points the ``tokenizers`` regex engine puts in ``\\p{L}``, ``\\p{N}`` or ``\\s`` (``name``), read
    from the engine itself on every code point (about 1 s, once per process)."""
    return _engine_classes()[name]


@lru_cache(maxsize=1)
def isolated_digits() -> Ranges:
    """The code points ``Digits(individual_digits=True)`` puts on their own, read from that pre-tokenizer on every
    code point (Rust's ``char::is_numeric``, whose Unicode tables are newer than the engine's ``\\p{N}``: 13 more
    code points in ``tokenizers`` 0.23)."""
    from tokenizers import pre_tokenizers

    digits = pre_tokenizers.Digits(individual_digits=True)
    # over plain text a digit is a pre-token of one character and so is a lone other character between two
    # digits; those few candidates are read again apart
    candidates: list[int] = []
    for codes in _planes():
        text = "".join(map(chr, codes))
        candidates += [codes[a] for _, (a, b) in digits.pre_tokenize_str(text) if b - a == 1]
    inside = _members(digits, [chr(c) for c in candidates])
    return normalise_ranges((c, c) for c, member in zip(candidates, inside) if member)


def _without_surrogates(ranges: Ranges) -> Ranges:
    lo, hi = SURROGATES
    out = []
    for a, b in ranges:
        if a < lo:
            out.append((a, min(b, lo - 1)))
        if b > hi:
            out.append((max(a, hi + 1), b))
    return tuple(out)


# --- code point ranges as UTF-8 byte sequences ---

_LIMITS = ((0x7F, 1), (0x7FF, 2), (0xFFFF, 3), (MAX_CODE_POINT, 4))


def _utf8_sequences(lo: int, hi: int) -> list[tuple[tuple[int, int], ...]]:
    """The byte-range sequences matching exactly the UTF-8 encodings of ``lo..hi`` (no surrogates inside)."""
    for limit, _ in _LIMITS[:-1]:  # split where the encoded length changes
        if lo <= limit < hi:
            return _utf8_sequences(lo, limit) + _utf8_sequences(limit + 1, hi)
    if hi < 0x80:
        return [((lo, hi),)]
    n = next(k for limit, k in _LIMITS if hi <= limit)
    for i in range(1, n):  # split until every continuation byte spans its full range or a single prefix
        mask = (1 << (6 * i)) - 1
        if lo & ~mask != hi & ~mask:
            if lo & mask:
                return _utf8_sequences(lo, lo | mask) + _utf8_sequences((lo | mask) + 1, hi)
            if hi & mask != mask:
                return _utf8_sequences(lo, (hi & ~mask) - 1) + _utf8_sequences(hi & ~mask, hi)
    a, b = chr(lo).encode("utf-8"), chr(hi).encode("utf-8")
    return [tuple(zip(a, b))]


def _byte_trie(ranges: Ranges) -> dict:
    """A trie over byte ranges: ``{(lo, hi): child}``, with ``None`` for a sequence's end."""
    root: dict = {}
    for lo, hi in _without_surrogates(ranges):
        for seq in _utf8_sequences(lo, hi):
            node = root
            for span in seq[:-1]:
                node = node.setdefault(span, {})
            node[seq[-1]] = None
    return root


def _mapped_class(spans: Iterable[tuple[int, int]]) -> str:
    """A regex character class of the byte-level characters of the bytes in ``spans``."""
    table = byte_to_char()
    chars = normalise_ranges((ord(table[b]), ord(table[b])) for lo, hi in spans for b in range(lo, hi + 1))
    body = "".join(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in chars)
    return body if len(chars) == 1 and chars[0][0] == chars[0][1] else f"[{body}]"


def _emit(node: dict) -> str:
    """A node's alternation: edges with the same subtree share one class; single bytes (ASCII) come first."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for span, child in sorted(node.items()):
        groups.setdefault("" if child is None else _emit(child), []).append(span)
    alts = [_mapped_class(spans) + tail for tail, spans in groups.items()]
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


# a multi-byte part longer than this is written once, as a group the rewritten regex calls: ``\p{L}`` and
# ``[^\s\p{L}\p{N}]`` are some 20,000 characters each, and the rules use them hundreds of times. Shorter ones
# (``\p{N}``: 3,800) are written out, since every group costs every regex search (33M fewer encode
# instructions than calling the three shorter ones too)
INLINE_LIMIT = 4000


@lru_cache(maxsize=None)
def _class_parts(ranges: Ranges) -> tuple[str, str, str]:
    """The ASCII part of a class, its multi-byte part and a class of the latter's lead bytes, in byte-level form
    ("" where there is none); the rules use the same few classes hundreds of times."""
    trie = _byte_trie(ranges)
    ascii_part = {span: child for span, child in trie.items() if span[1] < 0x80}
    multi = {span: child for span, child in trie.items() if span[0] >= 0x80}
    return (_emit(ascii_part) if ascii_part else "", _emit(multi) if multi else "",
            _mapped_class(list(multi)) if multi else "")


class _Classes:
    """Writes character classes in byte-level form, collecting the groups their long multi-byte parts call."""

    def __init__(self) -> None:
        self.groups: dict[str, str] = {}  # multi-byte trie -> group name

    def parts(self, ranges: Ranges, behind: bool) -> tuple[str, str]:
        """One character of ``ranges``: its ASCII part and its multi-byte part ("" where it has none). Outside a
        lookbehind (where the engine allows none) the multi-byte sequences sit behind a lookahead for their lead
        bytes, so that where the class fails on an ASCII character (every word's end) the engine tests two
        classes, not dozens of alternatives."""
        ascii_rx, body, leads = _class_parts(ranges)
        if len(body) > INLINE_LIMIT:
            body = "\\g<%s>" % self.groups.setdefault(body, f"b{len(self.groups)}")
        if body and not behind:
            body = f"(?={leads}){body}"
        return ascii_rx, body

    def definitions(self) -> str:
        """The called groups, defined in a branch that never matches."""
        return "".join(f"(?<{name}>{body}){{0}}" for body, name in self.groups.items())


# --- the rewrite ---

_NAMED = {"p{L}": ("L", False), "P{L}": ("L", True), "p{N}": ("N", False), "P{N}": ("N", True),
          "s": ("s", False), "S": ("s", True)}
_ANCHORS = {"z", "A", "G"}
# the engine's line anchors look for the text's newline, which byte-level text writes as another character (Ċ)
_NEWLINE = "\\x{%X}" % ord(byte_to_char()[0x0A])
_LINE_ANCHORS = {"^": f"(?<![^{_NEWLINE}])", "$": f"(?![^{_NEWLINE}])", "\\Z": f"(?={_NEWLINE}?\\z)"}
_COUNTED = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")
# a class that matches nothing, as one atom a quantifier may follow (the engine refuses to repeat ``(?!)``)
_NOTHING = "[^\\x{0}-\\x{10FFFF}]"
_GREEDY_RUN = re.compile(r"([+*])(\+?)(?![?+])")


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p, self.i = pattern, 0
        self.classes = _Classes()
        self.behind = 0  # how many lookbehinds the cursor is in

    def cls(self, ranges: Ranges) -> tuple[str, bool]:
        a, m = self.classes.parts(ranges, self.behind > 0)
        quant = _GREEDY_RUN.match(self.p, self.i)
        if a and m and quant:
            # a greedy run, unrolled: ASCII characters a run at a time (the engine loops over a class without
            # an alternation's bookkeeping) and each multi-byte one followed by such a run. It parses every
            # string one way, so backtracking tries the same lengths in the same order and finds the same match
            self.i = quant.end()
            first = f"(?:{a}|{m})" if quant.group(1) == "+" else ""
            run = f"{first}{a}*(?:{m}{a}*)*"
            return (f"(?>{run})" if quant.group(2) else f"(?:{run})"), True
        rx = a + m if not (a and m) else f"(?:{a}|{m})"
        return (rx or _NOTHING), len(_split_atoms(rx or _NOTHING)) == 1

    def error(self, why: str) -> ValueError:
        return ValueError(f"cannot rewrite regex at {self.i}: {why}: ...{self.p[max(0, self.i - 30):self.i + 30]}...")

    def peek(self, n: int = 1) -> str:
        return self.p[self.i:self.i + n]

    def alternation(self) -> str:
        parts = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.sequence())
        return "|".join(parts)

    def sequence(self) -> str:
        out = []
        while self.i < len(self.p) and self.peek() not in "|)":
            atom, single = self.atom()
            quant = self.quantifier()
            if quant and not single:
                atom = f"(?:{atom})"
            out.append(atom + quant)
        return "".join(out)

    def quantifier(self) -> str:
        start = self.i
        if self.peek() in ("?", "*", "+"):
            self.i += 1
        elif counted := _COUNTED.match(self.p, self.i):
            self.i = counted.end()
        else:
            return ""
        if self.peek() in ("?", "+"):  # lazy or possessive
            self.i += 1
        return self.p[start:self.i]

    def atom(self) -> tuple[str, bool]:
        """The rewritten atom and whether a quantifier may follow it as it is (one group or character)."""
        c = self.peek()
        if c == "(":
            for opener in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
                if self.p.startswith(opener, self.i):
                    break
            else:
                if self.p.startswith("(?<", self.i):
                    opener = self.p[self.i:self.p.index(">", self.i) + 1]
                elif self.p.startswith("(?", self.i):
                    raise self.error("unsupported group")
                else:
                    opener = "("
            self.i += len(opener)
            behind = opener in ("(?<=", "(?<!")
            self.behind += behind
            body = self.alternation()
            self.behind -= behind
            if self.peek() != ")":
                raise self.error("unclosed group")
            self.i += 1
            return f"{opener}{body})", True
        if c == "[":
            return self.cls(self.char_class())
        if c == ".":
            self.i += 1
            return self.cls(_complement(((0x0A, 0x0A),)))
        if c == "\\":
            nxt = self.peek(2)[1:]
            if nxt in _ANCHORS:
                self.i += 2
                return f"\\{nxt}", False
            if nxt == "Z":
                self.i += 2
                return _LINE_ANCHORS["\\Z"], False
            if nxt == "k":
                end = self.p.index(">", self.i)
                ref, self.i = self.p[self.i:end + 1], end + 1
                return ref, True
            return self.cls(self.escape())
        if c in "^$":
            self.i += 1
            return _LINE_ANCHORS[c], False
        self.i += 1
        return self.cls(((ord(c), ord(c)),))

    def escape(self) -> Ranges:
        """The code points of the escape at the cursor (a character or a class)."""
        self.i += 1
        c = self.peek()
        for key, (name, negated) in _NAMED.items():
            if self.p.startswith(key, self.i):
                self.i += len(key)
                ranges = engine_class(name)
                return _complement(ranges) if negated else ranges
        if c == "x":
            if self.peek(2) == "x{":
                end = self.p.index("}", self.i)
                code, self.i = int(self.p[self.i + 2:end], 16), end + 1
            else:
                code, self.i = int(self.p[self.i + 1:self.i + 3], 16), self.i + 3
            return ((code, code),)
        simple = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B}
        if c.isalnum() and c not in simple:
            raise self.error(f"unsupported escape \\{c}")
        self.i += 1
        code = simple.get(c, ord(c))
        return ((code, code),)

    def char_class(self) -> Ranges:
        self.i += 1
        negated = self.peek() == "^"
        self.i += negated
        spans: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            if self.i >= len(self.p):
                raise self.error("unclosed character class")
            first = False
            if self.peek(2) == "&&":
                raise self.error("unsupported class intersection")
            if self.peek() == "[":  # a nested class: its union with the rest
                spans.extend(self.char_class())
                continue
            item = self.escape() if self.peek() == "\\" else self.literal()
            if self.peek() == "-" and self.peek(2) != "-]" and len(item) == 1 and item[0][0] == item[0][1]:
                self.i += 1
                hi = self.escape() if self.peek() == "\\" else self.literal()
                item = ((item[0][0], hi[0][0]),)
            spans.extend(item)
        self.i += 1
        ranges = normalise_ranges(spans)
        return _complement(ranges) if negated else ranges

    def literal(self) -> Ranges:
        c = self.peek()
        self.i += 1
        return ((ord(c), ord(c)),)


def _split_atoms(rx: str) -> list[str]:
    """The top-level atoms of a rewritten class (a class ``[..]``, an escape, or a group)."""
    atoms, i = [], 0
    while i < len(rx):
        if rx[i] == "[":
            j = rx.index("]", i) + 1
        elif rx.startswith("\\x{", i):
            j = rx.index("}", i) + 1
        elif rx.startswith(("\\g<", "\\k<"), i):
            j = rx.index(">", i) + 1
        elif rx[i] == "(":
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(rx[j], 0)
                j += 1
                if depth == 0:
                    break
        else:
            j = i + 1
        atoms.append(rx[i:j])
        i = j
    return atoms


def byte_level_regex(pattern: str) -> str:
    """``pattern`` (a regex over text) rewritten to give the same matches over the text's byte-level form."""
    parser = _Parser(pattern)
    out = parser.alternation()
    if parser.i != len(pattern):
        raise parser.error("unbalanced parenthesis")
    defs = parser.classes.definitions()
    return f"{out}|(?!){defs}" if defs else out

"""Where runs of white space (spaces, newlines, tabs) may be cut, asked of the vocabulary and of BPE.

GPT-2's regex keeps every run of white space in one pre-token (``\\s+(?!\\S)``): a newline with the indentation
after it, a tab with the spaces after it, trailing spaces with the blank lines after them. Whether a cut inside
such a pre-token holds depends on the vocabulary: GPT-2 never joins a newline to a space, SmolLM2 has pieces of a
newline and up to 80 spaces. A cut between two white characters holds for every run where no vocabulary piece
joins them (BPE never merges across it); elsewhere BPE is asked about every run length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import product

from tokenizers import Tokenizer

from ivr.tokenizers.byte_level import run_length, text_to_piece
from ivr.tokenizers.byte_level_regex import engine_class
from ivr.tokenizers.distill.gpt2_regex import rx

# the ASCII white space of GPT-2's ``\s`` ([\t\n\x0b\x0c\r ]): what BPE is asked about after a run; the white space
# beyond it (``other_white``) is judged by the vocabulary alone
ASCII_WHITE = "\t\n\x0b\x0c\r "
WHITE_PIECES = {text_to_piece(y): y for y in ASCII_WHITE}
WHITE_RUN_CHARS = {"\n": "newline", "\t": "tab"}
# what may stand before a run in its pre-token: white strings up to this long (a line's end, "\r\n", " \n",
# two blank lines); longer ones are left to GPT-2's alternatives. Every lead is tried at every line's indentation,
# in a trie behind a lookahead for the shortest run it cuts: 1.8% more encode instructions for SmolLM2's
# tokenizer, 0.2% for GPT-2's
LEAD_LENGTH = 3
LEAD_CHARS = "\n\r\t "
# how much white space after a run BPE is asked about before a cut there is trusted, besides the white space
# each piece that joins them holds after the join and two more characters (asked once, when the rule is built)
REST_LENGTH = 4


@lru_cache(maxsize=1)
def other_white() -> str:
    """The white space of the regex engine's ``\\s`` beyond ASCII (no-break spaces, U+2028, U+3000): a run of
    one of them whose characters BPE keeps whole (GPT-2's no-break space) gets a rule of the class ``white``."""
    return "".join(chr(c) for lo, hi in engine_class("s") for c in range(max(lo, 0x80), hi + 1))


def joined_white(vocab: Iterable[str]) -> frozenset[tuple[str, str]]:
    """The pairs of white characters that some vocabulary piece (byte-level) may hold side by side: the first one's
    last byte before the second one's first. BPE never merges across two white characters of any other pair."""
    adjacent = {pair for p in vocab for pair in zip(p, p[1:])}
    ends = {y: (text_to_piece(y)[-1], text_to_piece(y)[0]) for y in ASCII_WHITE + other_white()}
    return frozenset((a, b) for a, (last, _) in ends.items() for b, (_, first) in ends.items()
                     if (last, first) in adjacent)


def kept_apart(bare_bpe: Tokenizer, raw: str, max_run: int,
               joined: frozenset[tuple[str, str]] | None = None) -> str:
    """The white characters before which BPE ends a run of the white character ``raw``: those no vocabulary piece
    joins to ``raw``, and those BPE never merges with the run, asked about every run length up to ``max_run``
    followed by the character and any white space: every string of up to ``REST_LENGTH`` characters, and the
    white space that each piece joining them holds after the join, with up to two more characters (a piece
    further on may take what would otherwise keep the join from forming). SmolLM2 has pieces of a tab and a
    newline, but its tabs merge with each other first. ``joined``: ``joined_white`` of its vocabulary."""
    vocab = list(bare_bpe.get_vocab())
    joined = joined_white(vocab) if joined is None else joined
    char = text_to_piece(raw)
    out = ""
    for y in ASCII_WHITE + other_white():
        if y == raw:
            continue
        if (raw, y) in joined:
            if y not in ASCII_WHITE or raw not in ASCII_WHITE:  # the rests asked about are ASCII: trust the join
                continue
            rests = {y + tail for tail in _white_strings(REST_LENGTH - 1)}
            rests |= {held + tail for held in _held_after(vocab, char, text_to_piece(y)) for tail in _white_strings(2)}
            runs = [char * n for n in range(1, max_run + 1)]
            texts = [(len(run), run + text_to_piece(rest)) for rest in sorted(rests) for run in runs]
            encs = bare_bpe.encode_batch([t for _, t in texts])
            if not all(_cut_at(enc.tokens, n) for (n, _), enc in zip(texts, encs)):
                continue
        out += y
    return out


def _white_strings(longest: int) -> list[str]:
    """Every string of ASCII white space up to ``longest`` characters, the empty one included."""
    return ["".join(t) for m in range(longest + 1) for t in product(ASCII_WHITE, repeat=m)]


def _held_after(vocab: Iterable[str], char: str, y: str) -> set[str]:
    """The white text that pieces holding ``char`` then ``y`` (byte-level) hold from ``y`` on, up to their first
    character that is no white space."""
    out = set()
    for p in vocab:
        at = p.find(char + y)
        while at >= 0:
            rest = p[at + len(char):]
            held = ""
            for ch in rest:
                if ch not in WHITE_PIECES:
                    break
                held += WHITE_PIECES[ch]
            out.add(held)
            at = p.find(char + y, at + 1)
    return out


def _cut_at(tokens: Sequence[str], at: int) -> bool:
    """Whether a token ends after the first ``at`` characters."""
    end = 0
    for token in tokens:
        end += len(token)
        if end >= at:
            return end == at
    return False


def white_run_end(raw: str, apart_after: str) -> str:
    """Where the pre-token of a run of the white character ``raw`` ends. A run of spaces: where its last space goes
    to the word after it, at the end of the text, or before other white space and a word (trailing spaces at a
    line's end). Of other white space: before one white character and a word (GPT-2's ``\\s+(?!\\S)`` leaves it
    to the next pre-token), or at the end of the text. Either also before a white character that BPE never merges
    with the run (``apart_after``, from ``kept_apart``; a run before other white space may merge with it, and is
    left to GPT-2's alternatives)."""
    alts = [r"\x{20}(?=\S)", r"\z", r"(?=[^\S\x{20}]\S)"] if raw == " " else [r"\s(?=\S)", r"\z"]
    if apart_after:
        alts.append(f"(?=[{''.join(rx(y) for y in apart_after)}])")
    return f"(?:{'|'.join(alts)})"


def white_before(joined: frozenset[tuple[str, str]], raw: str, max_run: int) -> str | None:
    """An alternative cutting the other white space before a run of ``raw`` (two or more) off as its own
    pre-token, for the white characters no vocabulary piece joins to ``raw``: BPE then never merges across the
    cut, and the run starts a pre-token, where its rule cuts it into BPE's chunks (DeepSeek-Coder's ``\\n`` before
    46 spaces; GPT-2's ``x \\n\\n\\n``, ``Ġ``·``ĊĊ``·``Ċ``)."""
    others = [y for y in ASCII_WHITE + other_white() if y != raw and (y, raw) not in joined]
    # up to ``max_run`` characters: tried at every pre-token start in a stretch of white space, an unbounded
    # prefix rescans the rest of the stretch each time (quadratic in its length)
    return f"[{''.join(rx(y) for y in others)}]{{1,{max_run}}}(?={rx(raw)}{{2}})" if others else None


def white_leads(raw: str) -> list[str]:
    """The white strings that may stand before a run of the white character ``raw`` in its pre-token and that its
    rule asks BPE about (up to ``LEAD_LENGTH`` characters, not ending in ``raw``)."""
    return ["".join(t) for m in range(1, LEAD_LENGTH + 1) for t in product(LEAD_CHARS, repeat=m) if t[-1] != raw]


def lead_trie(branches: dict[str, str]) -> str:
    """One regex alternation matching each lead followed by its branch, as a trie over the leads' characters, so
    that a position fails each character once however many leads share it."""
    alts = [f"(?:{branches['']})"] if "" in branches else []
    by_first: dict[str, dict[str, str]] = {}
    for lead, branch in branches.items():
        if lead:
            by_first.setdefault(lead[0], {})[lead[1:]] = branch
    alts += [f"{rx(first)}(?:{lead_trie(rest)})" for first, rest in sorted(by_first.items())]
    return "|".join(alts)


def led_rests(bare_bpe: Tokenizer, raw: str, chunks: Sequence[Sequence[int]], max_run: int,
              joined: frozenset[tuple[str, str]]) -> dict[str, dict[int, list[int]]]:
    """For each white lead (up to ``LEAD_LENGTH`` characters, not ending in the run's character) that BPE may join
    to a run of the white character ``raw`` (SmolLM2's ``\\n`` and up to 80 spaces): the run lengths, by how many
    of the run's characters BPE's first tokens take with the lead (``a``, maybe 0), at which BPE chunks the rest
    of the run as a pure run (``chunks``). A lead made only of characters no piece joins to ``raw`` is left out:
    ``white_before`` cuts it off for every run length."""
    char = text_to_piece(raw)
    leads = [lead for lead in white_leads(raw) if any((y, raw) in joined for y in lead)]
    texts = [(lead, n, text_to_piece(lead) + char * n) for lead in leads for n in range(1, max_run + 1)]
    out: dict[str, dict[int, list[int]]] = {}
    for (lead, n, text), enc in zip(texts, bare_bpe.encode_batch([t for _, _, t in texts])):
        head, piece = "", text_to_piece(lead)
        for j, token in enumerate(enc.tokens):
            head += token
            if len(head) >= len(piece):
                a = run_length(head[len(piece):], char) if head.startswith(piece) else None
                if a is not None and a < n and enc.tokens[j + 1:] == [char * k for k in chunks[n - a]]:
                    out.setdefault(lead, {}).setdefault(a, []).append(n - a)
                break
    return out



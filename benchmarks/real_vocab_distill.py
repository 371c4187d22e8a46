"""Distil the tokenizers of real models: llama.cpp's vocabulary-only GGUF files of Llama-3, Qwen2, StarCoder,
DeepSeek and Falcon, as the pinned llama-cpp-python source distribution on PyPI ships them (``common.llama_cpp_vocab``,
downloaded once into ``--cache``), each loaded as ``transformers`` converts a GGUF tokenizer.

For each: how many of llama.cpp's tokenizer test strings the converted source and the distilled tokenizer encode
to the ids the model's own Hugging Face tokenizer gives (the ``.out`` file beside each GGUF); then distillation on
the distillation benchmark's code (the standard library's ``.py`` files, every 10th held out) with the default
settings, verified on the held-out code and English prose, and the encode speed against the source in the same run.

    uv run --group smollm2 python benchmarks/real_vocab_distill.py --out /tmp/real_vocabs

``transformers`` converts Llama-3's and Qwen2's files with their own pre-tokenizer regexes, which the distilled
tokenizer keeps (with run cuts, no split or word rules). What the conversion drops of a file's pre-tokenizer type,
``ivr`` reads as llama.cpp does: Llama-3's ``ignore_merges`` and StarCoder's isolated digits
(``Digits(individual_digits=True)`` before GPT-2's regex). DeepSeek's and Falcon's own pre-tokenizers are not
restored: those sources are the converted tokenizers (GPT-2's regex), and the test strings show how far they are
from the models'.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from common import (
    EXACT_TARGET, LLAMA_CPP_VOCABS, Stopwatch, add_heldout_every, encode_speeds, english_prose, fetched_source,
    llama_cpp_cases, llama_cpp_vocab, parser, positive_int, stdlib_split,
)

from ivr.paths import TOKENIZER_FILE
from ivr.tokenizers.distill import DistillSettings, distill_tokenizer
from ivr.tokenizers.distill.scores import piece_trees
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.io import load_tokenizer



def matches(tok, cases: list[tuple[str, list[int]]]) -> int:
    """How many test strings ``tok`` encodes, without special tokens, to the expected ids."""
    return sum(tok.encode(text, add_special_tokens=False).ids == ids for text, ids in cases)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/real_vocabs"),
                    help="per vocabulary, its BPE (OUT/<vocabulary>/original), the distilled tokenizer and its reports")
    ap.add_argument("--vocabs", default="llama-bpe,qwen2,starcoder,deepseek-coder,deepseek-llm,falcon",
                    help="comma-separated llama.cpp vocabulary names (ggml-vocab-NAME.gguf)")
    ap.add_argument("--cache", type=Path, default=LLAMA_CPP_VOCABS, help="where the GGUF files are kept")
    ap.add_argument("--repeats", type=positive_int, default=3, help="passes over the held-out code for the encode speed")
    add_heldout_every(ap)
    args = ap.parse_args()

    fit_texts, held_texts = stdlib_split(args.heldout_every)
    prose = english_prose()
    header = ("vocabulary | ids / tree merges (listed) | pre-tokenizer | llama.cpp test strings: source / distilled "
              "as the model's tokenizer | fit (s) / peak MiB | corpus wrong | held-out code exact (wrong) | "
              "English prose exact (wrong) | decode([i]) differing | encode speed vs source, batched / one thread | "
              "tokenizer.json MB, source / distilled")
    rows = []
    # every name looked up before the first fit: a misspelled one stops the run now, with the known names
    ggufs = {name: llama_cpp_vocab(name, args.cache) for name in args.vocabs.split(",")}
    for name, gguf in ggufs.items():
        out = args.out / name
        bpe, special = fetched_source(out / "original", str(gguf))
        source = source_bpe(bpe)
        with Stopwatch() as stage:
            summary = distill_tokenizer(bpe, fit_texts, held_texts, DistillSettings(), out / "tokenizer",
                                        out / "report.md", out / "report.json", extra_eval_texts=prose, special=special)
        distilled = load_tokenizer(out / "tokenizer")
        cases = llama_cpp_cases(gguf)
        sets, fit, ids = summary["sets"], summary["fit"], summary["ids"]
        code = sets["heldout"]
        prose_occ = sum(sets[k]["word_occurrences"] for k in prose)
        prose_wrong = sum(sets[k]["mismatched_occurrences"] for k in prose)
        speeds = [statistics.median(ratios["distilled"]) for _, _, ratios in
                  encode_speeds({"bpe": bpe, "distilled": distilled}, held_texts, args.repeats)]
        rows.append(" | ".join([
            name,
            f"{ids['vocab_size']} / {len(piece_trees(source.merges))} ({len(source.merges)})",
            "GPT-2's regex with rules" if source.rules else "its own, kept",
            f"{matches(bpe, cases)} / {matches(distilled, cases)} of {len(cases)}",
            f"{fit['fit_seconds']:.0f} ({stage.seconds:.0f} with verification) / {fit['peak_rss_mb']:.0f}",
            str(sets["corpus"]["mismatched_occurrences"]),
            f"{code['rates']['word_occurrence']:.4%} ({code['mismatched_occurrences']} of {code['word_occurrences']})",
            f"{1 - prose_wrong / prose_occ:.4%} ({prose_wrong} of {prose_occ})",
            f"{ids['single_id_decode_mismatches']} of {ids['vocab_size']}",
            " / ".join(f"{s:.3f}x" for s in speeds),
            " / ".join(f"{(out / d / TOKENIZER_FILE).stat().st_size / 1e6:.1f}" for d in ("original", "tokenizer")),
        ]))
        print(rows[-1], flush=True)
    print(f"\n{header}\n{'|'.join('---' for _ in header.split(' | '))}")
    print("\n".join(rows))
    print(f"\ntarget: {EXACT_TARGET:.2%} of held-out word occurrences; `{args.out}/<vocabulary>/report.md` lists every "
          "mismatch")


if __name__ == "__main__":
    main()

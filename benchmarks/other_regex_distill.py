"""Distil byte-level BPEs whose pre-tokenizer regex is not GPT-2's (Llama-3's, Qwen2's), which the distilled
tokenizer keeps as it is, without split or word rules; GPT-2's regex, with its rules, is the control.

No such tokenizer ships offline, so each BPE is trained here on the fit split of the distillation benchmark's
corpus (the standard library's ``.py`` files, every 10th held out), with the same vocabulary size for every regex,
then distilled on that split with the default settings and verified on the held-out code and English prose.
The figures describe the method on these regexes, not Llama-3's or Qwen2's own merges.

    uv run python benchmarks/other_regex_distill.py --out /tmp/other_regex
"""

from __future__ import annotations

from pathlib import Path

from common import (
    EXACT_TARGET, Stopwatch, add_heldout_every, comma_choices, english_prose, parser, positive_int, print_metrics,
    speed_rows, stdlib_split,
)
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ivr.tokenizers.distill import DistillSettings, distill_tokenizer
from ivr.tokenizers.gpt2_pre_tokens import GPT2_PATTERN
from ivr.paths import TOKENIZER_FILE
from ivr.tokenizers.io import load_tokenizer

REGEXES = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "gpt2": GPT2_PATTERN,
}


def trained_bpe(pattern: str, texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE cutting text by ``pattern`` (``Split`` then ``ByteLevel``, as Llama-3's tokenizer.json
    writes it), trained on ``texts``, ``<|endoftext|>`` its one added token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/other_regex"),
                    help="per regex, the trained BPE (OUT/<regex>/source), the distilled tokenizer and its reports")
    ap.add_argument("--regexes", type=comma_choices(REGEXES), default="llama3,qwen2,gpt2",
                    help=f"comma-separated, of {', '.join(REGEXES)}")
    ap.add_argument("--vocab-size", type=positive_int, default=32768, help="vocabulary size of every trained BPE")
    ap.add_argument("--repeats", type=positive_int, default=3, help="passes over the held-out code for the encode speed")
    add_heldout_every(ap)
    args = ap.parse_args()

    fit_texts, held_texts = stdlib_split(args.heldout_every)
    prose = english_prose()
    rows: list[tuple[str, str]] = []
    for name in args.regexes:
        bpe = trained_bpe(REGEXES[name], fit_texts, args.vocab_size)
        out = args.out / name
        (out / "source").mkdir(parents=True, exist_ok=True)
        bpe.save(str(out / "source" / TOKENIZER_FILE))  # for data.tokenizer_local_dir
        with Stopwatch() as stage:
            summary = distill_tokenizer(bpe, fit_texts, held_texts, DistillSettings(), out / "tokenizer",
                                        out / "report.md", out / "report.json", extra_eval_texts=prose)
        sets, fit = summary["sets"], summary["fit"]
        code = sets["heldout"]
        prose_occ = sum(sets[k]["word_occurrences"] for k in prose)
        prose_wrong = sum(sets[k]["mismatched_occurrences"] for k in prose)
        ids = summary["ids"]
        rows += [
            (f"{name}: fit / stage incl. verification (s); split rules / word rules",
             f"{fit['fit_seconds']:.1f} / {stage.seconds:.1f}; "
             f"{len([r for r in fit.get('split_rules_considered', []) if r.get('accepted')])} / {fit['word_rules']}"),
            (f"{name}: decode([i]) mismatches / random sequences decoded differently",
             f"{ids['single_id_decode_mismatches']} of {ids['vocab_size']} / {ids['random_sequence_decode_mismatches']}"),
            (f"{name}: corpus exact word occurrences (wrong)",
             f"{sets['corpus']['rates']['word_occurrence']:.5%} ({sets['corpus']['mismatched_occurrences']})"),
            (f"{name}: held-out code exact word occurrences / wrong",
             f"{code['rates']['word_occurrence']:.5%} / {code['mismatched_occurrences']} of {code['word_occurrences']}"
             f" ({'meets' if code['rates']['word_occurrence'] >= EXACT_TARGET else 'misses'} {EXACT_TARGET:.2%})"),
            (f"{name}: English prose exact word occurrences / wrong",
             f"{1 - prose_wrong / prose_occ:.5%} / {prose_wrong} of {prose_occ}"
             f" ({'meets' if 1 - prose_wrong / prose_occ >= EXACT_TARGET else 'misses'} {EXACT_TARGET:.2%})"),
        ]
        rows += [(f"{name}: {k}", v) for k, v in speed_rows(bpe, load_tokenizer(out / "tokenizer"), held_texts,
                                                              args.repeats)]
    print_metrics(rows)


if __name__ == "__main__":
    main()

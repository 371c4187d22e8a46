"""At equal compute, does IVR reach lower bits per byte on held-out domain text than plain fine-tuning,
and how much general ability does it keep?

1. Base model. With ``--base DIR_OR_NAME`` (``openai-community/gpt2``, or any ``save_pretrained`` directory)
   that model is used as is. Without it (offline: no GPT-2 weights), a small GPT-2-architecture model
   (GPT-2's 50257-id vocabulary and BPE tokenizer) is pretrained here on general English that exists
   offline: Python's help topics (``pydoc_data.topics``, what ``ivr.builtin_corpora.help_topics`` returns)
   plus the plain-text files under ``/usr/share/doc`` when present. A stable-hash share of the help topics
   (``--general-heldout-fraction``) is held out of pretraining: it is the general-text evaluation set.
   ``/usr/share/doc`` only ever feeds pretraining (it repeats licence texts, so it would leak into an
   evaluation split).
2. Domain: the Python standard library sources through ``IVRDataModule`` (init, analyze,
   distill-tokenizer, select, remap, align), so the real stages produce the distilled and remapped
   tokenizers and the aligned embeddings. ``--distill-iterations`` caps the distillation fit (cheaper and
   less exact than the library default of 40 rounds; the exactness reached is printed).
3. Fine-tuning from the same base, on the same domain training documents, with ``lightning.Trainer`` and
   ``IVRLanguageModel``: (a) baseline on the original GPT-2 tokenizer, (b) IVR on the remapped tokenizer
   with ``mean`` initialisation. Equal compute = equal optimizer steps, batch size and block size (equal
   FLOPs, equal tokens); IVR packs more bytes into a token, so the bytes each run saw are reported.
4. Reports per run: held-out domain bits per byte (the headline), general-text bits per byte (forgetting;
   the held-out English encoded with that run's tokenizer), domain tokens per byte, training tokens/s and
   bytes seen. Every held-out document is scored whole, as ``real_model.py`` scores (behind the separator, in
   windows of ``--block-size`` tokens that overlap by one), so both tokenizers' bits per byte cover the same
   bytes.
5. Initialisation strategies (``mean``, ``global_mean``, ``random``, ``zeros``): the held-out domain loss
   and bits per byte right after initialisation, before any fine-tuning step, on ``--seeds`` base models
   (pretrained with seeds ``--seed``, ``--seed + 1``, ...; mean ± sd over them), split into the loss on
   targets that are reassigned ids and on all other targets, with the probability the model puts on the
   reassigned ids. GPT-2 ties its output head to ``wte``, so a reassigned row is also that id's output
   vector: a ``zeros`` row gets logit 0 at every position, and where 0 lies among the base's logits is a
   free choice of the parametrisation (``shift_logits`` moves every logit by one constant and leaves the
   model's predictions unchanged). ``mean``, ``global_mean`` and ``random`` are affine combinations of the
   original rows and move with them; ``zeros`` does not. So the base models' logit statistics are printed,
   and ``mean`` and ``zeros`` are re-evaluated on each base shifted to the log-partitions ``--logit-levels``
   (default -50: real GPT-2's logits are large negative numbers; a published printout of its next-token
   logits shows values from about -63 to -73).

Prints tables and writes ``<out>/results.json``. The defaults (three base models) finish in about 22 minutes
on one CPU core (``--threads 1``: 18 minutes measured with the first base, about 3 minutes, already
pretrained), less on two;
``--seeds 1`` saves two pretrainings, ``--init-only`` the fine-tuning runs:

    uv run python benchmarks/ivr_experiment.py --out artifacts/experiment

Scale up with e.g. ``--corpus-mb 8 --distill-iterations 40 --n-layer 4 --n-embd 256 --block-size 256
--pretrain-steps 3000 --steps 2000``, or fine-tune real GPT-2 with ``--base openai-community/gpt2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# common.py beside it, also where this file is imported by path rather than run (the tests)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import (
    document_windows, encode, fraction, non_negative_int, parser, positive_float, positive_int, random_seed,
    two_or_more,
)  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ivr.atomic import read_json_object, write_text  # noqa: E402
from ivr.builtin_corpora import documentation_texts, help_topics, until_size  # noqa: E402
from ivr.causal_lm import ModelShape, load_pretrained  # noqa: E402
from ivr.cleaned_corpus import is_heldout, iter_documents  # noqa: E402
from ivr.data import IVRDataModule  # noqa: E402
from ivr.embeddings import (  # noqa: E402
    INIT_STRATEGIES,
    AlignSettings,
    align_embeddings,
    install_embeddings,
    load_final_embeddings,
)
from ivr.metrics import bits_per_byte  # noqa: E402
from ivr.model import IVRLanguageModel  # noqa: E402
from ivr.packing import pack_blocks, token_byte_lengths  # noqa: E402
from ivr.paths import ArtifactPaths  # noqa: E402
from ivr.stamps import is_current, stamp_extra, write_stamp  # noqa: E402
from ivr.tokenizers.distill import DistillSettings  # noqa: E402
from ivr.tokenizers.io import load_tokenizer  # noqa: E402
from ivr.tokenizers.remap_rules import read_remap_rules  # noqa: E402
from ivr.tokenizers.special import ENDOFTEXT  # noqa: E402
from ivr.tokenizers.verify import read_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("ivr_experiment")


# ---- general English ---------------------------------------------------------------------------------------
SKIPPED_DOC_SUFFIXES = {".gz", ".xz", ".bz2", ".zip", ".png", ".jpg", ".svg", ".pdf", ".html", ".htm"}


def doc_files(max_mb: float) -> list[str]:
    """UTF-8 plain-text files under ``/usr/share/doc`` (no compressed files, none over 500 kB), blank texts
    and exact duplicates dropped, until ``max_mb`` is passed."""
    texts = documentation_texts(skip_suffixes=SKIPPED_DOC_SUFFIXES, max_file_bytes=500_000, clean=True)
    return until_size(texts, max_mb * 1e6)


def general_split(heldout_fraction: float, doc_mb: float) -> tuple[list[str], list[str]]:
    topics = [(f"pydoc_topics/{k}", text) for k, text in help_topics()]
    heldout = [t for i, t in topics if is_heldout(i, heldout_fraction)]
    train = [t for i, t in topics if not is_heldout(i, heldout_fraction)] + doc_files(doc_mb)
    return train, heldout


# ---- packing and evaluation --------------------------------------------------------------------------------
def separator_id(tok) -> int:
    """The id of ``<|endoftext|>``, the document separator of GPT-2's tokenizer and of those derived from it."""
    found = tok.token_to_id(ENDOFTEXT)
    if found is None:
        raise ValueError(f"the tokenizer has no {ENDOFTEXT} to separate documents")
    return found


def pack(tok, texts: list[str], block_size: int) -> list[dict]:
    """Pretraining documents packed as the training data are (``ivr.packing``), one dict per block; ``n_bytes``
    counts the bytes of the predicted tokens (all but the first of each block)."""
    return [
        {"input_ids": torch.from_numpy(block.copy()), "n_bytes": torch.tensor(int(n))}
        for blocks, counts in pack_blocks(tok, texts, block_size, separator_id(tok))
        for block, n in zip(blocks, counts)
    ]


def whole_documents(tok, texts: list[str], window: int) -> list[dict]:
    """Every document scored whole, as ``real_model.py`` scores (``document_windows``: behind the separator, in
    windows of ``window`` tokens that overlap by one), one dict per window; ``n_bytes`` counts the bytes of the
    tokens it predicts. Every token is predicted once, so each tokenizer's bits per byte covers the same bytes
    (packed blocks drop each tokenizer's own tail and first tokens)."""
    separator = separator_id(tok)
    nbytes = token_byte_lengths(tok, separator)
    return [{"input_ids": torch.from_numpy(ids), "n_bytes": torch.tensor(int(nbytes[ids[1:]].sum()))}
            for _, _, ids in document_windows(encode(tok, texts).ids, separator, window)]


def pad_windows(items: list[dict]) -> dict:
    """A batch of windows of any length: ids padded with 0 and ``valid`` marking the real next-token targets."""
    width = max(len(item["input_ids"]) for item in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    valid = torch.zeros(len(items), width - 1, dtype=torch.bool)
    for row, item in enumerate(items):
        ids[row, : len(item["input_ids"])] = item["input_ids"]
        valid[row, : len(item["input_ids"]) - 1] = True
    return {"input_ids": ids, "valid": valid, "n_bytes": torch.stack([item["n_bytes"] for item in items])}


def tokens_per_byte(tok, texts: list[str]) -> float:
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return tokens / max(sum(len(t.encode()) for t in texts), 1)


@torch.no_grad()
def evaluate(model, blocks, batch_size: int, reassigned: list[int] | None = None) -> dict:
    """Summed next-token NLL over ``blocks`` (windows of any length, ``whole_documents``): loss per token, bits
    per byte, and logit statistics.

    With ``reassigned`` ids, the loss is also split into targets that are reassigned ids and all other
    targets, and ``mass_reassigned`` is the mean probability the model puts on the reassigned ids together
    (to compare with ``reassigned_token_share``, how often one of them is the target). ``log_partition`` is
    the mean log-sum-exp of the logits: a token whose logit is 0 (a zero row of a tied head) gets log
    probability ``-log_partition``; ``mean_logit`` and ``target_logit`` place the logits around that 0.
    """
    model.eval()
    nll = tokens = nbytes = 0.0
    r_nll = r_tokens = r_mass = 0.0
    lse_sum = mean_logit = target_logit = 0.0
    r_ids = torch.tensor(reassigned or [], dtype=torch.long)
    for batch in DataLoader(blocks, batch_size=batch_size, collate_fn=pad_windows):
        ids, valid = batch["input_ids"], batch["valid"].reshape(-1)
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        logits = logits.reshape(-1, logits.size(-1))[valid]
        targets = ids[:, 1:].reshape(-1)[valid]
        lse = torch.logsumexp(logits, dim=-1)
        target_logits = logits.gather(1, targets[:, None])[:, 0]
        losses = lse - target_logits
        nll += losses.sum().item()
        tokens += targets.numel()
        nbytes += batch["n_bytes"].sum().item()
        lse_sum += lse.sum().item()
        mean_logit += logits.mean(dim=-1).sum().item()
        target_logit += target_logits.sum().item()
        if reassigned:
            mask = torch.isin(targets, r_ids)
            r_nll += losses[mask].sum().item()
            r_tokens += mask.sum().item()
            r_mass += torch.exp(torch.logsumexp(logits[:, r_ids], dim=-1) - lse).sum().item()
    n = max(tokens, 1)
    out = {
        "loss": nll / n,
        "bits_per_byte": bits_per_byte(nll, nbytes),
        "tokens": int(tokens),
        "bytes": int(nbytes),
        "log_partition": lse_sum / n,
        "mean_logit": mean_logit / n,
        "target_logit": target_logit / n,
    }
    if reassigned:
        out["loss_reassigned"] = r_nll / r_tokens if r_tokens else None
        out["loss_other"] = (nll - r_nll) / (tokens - r_tokens) if tokens > r_tokens else None
        out["reassigned_token_share"] = r_tokens / n
        out["mass_reassigned"] = r_mass / n
    return out


@torch.no_grad()
def shift_logits(model, offset: float):
    """Reparametrise a GPT-2 in place so that every logit moves by ``offset`` and nothing else changes.

    The final LayerNorm gives ``h = ln_f.weight * x_hat + ln_f.bias`` with ``x_hat`` summing to 0 over the
    width, so ``h . (a / ln_f.weight) = a * sum(ln_f.bias / ln_f.weight)`` at every position: adding
    ``g = a / ln_f.weight`` to every output row adds that constant to every logit, which the softmax ignores.
    A tied model's input rows move by ``g`` too, so ``g`` is taken off every position row (the first block
    sees ``wte[i] + wpe[p]``, unchanged). The base model's predictions are the same (up to rounding); an
    initialisation that is an affine combination of the original rows (``mean``, ``global_mean``,
    ``random``) moves with them, so its predictions are the same as well; a ``zeros`` row does not move: its
    logit stays 0 while every other logit moves by ``offset``. Returns the model.
    """
    gamma, beta = model.transformer.ln_f.weight, model.transformer.ln_f.bias
    per_unit = (beta / gamma).sum()
    if not torch.isfinite(per_unit) or per_unit.abs() < 1e-6:
        raise ValueError("ln_f leaves no direction that moves every logit by the same amount")
    g = (offset / per_unit) / gamma
    head = model.get_output_embeddings().weight
    head += g
    if head is model.transformer.wte.weight:
        model.transformer.wpe.weight -= g
    return model


# ---- training ----------------------------------------------------------------------------------------------
class Meter(L.Callback):
    """Training wall time (after ``skip`` warm-up steps), tokens and predicted bytes seen."""

    def __init__(self, skip: int = 2):
        self.skip, self.tokens, self.bytes, self.timed_tokens = skip, 0, 0, 0
        self.start = self.end = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.skip:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.tokens += batch["input_ids"].numel()
        self.bytes += int(batch["n_bytes"].sum())
        if self.start is not None:
            self.timed_tokens += batch["input_ids"].numel()
            self.end = time.perf_counter()

    @property
    def tokens_per_sec(self) -> float | None:
        return self.timed_tokens / (self.end - self.start) if self.start and self.end > self.start else None


def trainer(steps: int, meter: Meter) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        gradient_clip_val=1.0, callbacks=[meter],
    )


def pretrain(args, base_dir: Path, train_texts: list[str], tok, seed: int | None = None) -> dict:
    """Train a small GPT-2 from scratch on general English and ``save_pretrained`` it to ``base_dir``.

    ``seed`` (default ``args.seed``) seeds the initial weights and the order of the training blocks."""
    seed = args.seed if seed is None else seed
    shape = ModelShape(
        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, n_positions=args.block_size, init_seed=seed
    )
    key = {"shape": asdict(shape), "steps": args.pretrain_steps, "lr": args.pretrain_lr, "batch": args.batch_size,
           "block": args.block_size, "data": hashlib.sha256("\0".join(train_texts).encode()).hexdigest()}
    stamp = base_dir / "pretrain.json"
    if is_current(stamp, key, [base_dir / "config.json"]):
        print(f"pretrain: reusing {base_dir}")
        return stamp_extra(stamp, "result")
    blocks = pack(tok, train_texts, args.block_size)
    print(f"pretrain: {len(train_texts)} documents, {len(blocks)} blocks of {args.block_size} tokens, "
          f"{args.pretrain_steps} steps of {args.batch_size} blocks")
    L.seed_everything(seed, verbose=False)
    module = IVRLanguageModel(
        model_name_or_path=None, from_config=shape, learning_rate=args.pretrain_lr,
        warmup_steps=max(args.pretrain_steps // 10, 1),
    )
    meter = Meter()
    started = time.perf_counter()
    trainer(args.pretrain_steps, meter).fit(
        module, DataLoader(blocks, batch_size=args.batch_size, shuffle=True, drop_last=True)
    )
    module.model.save_pretrained(base_dir)
    result = {"blocks": len(blocks), "tokens_seen": meter.tokens, "bytes_seen": meter.bytes,
              "tokens_per_sec": meter.tokens_per_sec, "seconds": time.perf_counter() - started,
              "shape": asdict(shape)}
    write_stamp(stamp, key, [base_dir / "config.json"], result=result)
    return result


def compare_inits(
    base: str, paths: ArtifactPaths, out_dir: Path, blocks: dict, reassigned: list[int], batch_size: int,
    levels: list[float] = (), native_log_partition: float | None = None, general_blocks: list | None = None,
) -> dict:
    """Every initialisation strategy on one base model, evaluated before any fine-tuning.

    ``strategies``: the held-out domain evaluation (``blocks["remapped"]``) of the remapped tokenizer with
    each strategy's rows, built by the real align stage (and the general-text one with ``general_blocks``).
    ``levels``: the same base reparametrised by ``shift_logits`` so that its mean log-partition on the
    held-out domain (original tokenizer) is each level instead of ``native_log_partition``, checked by
    re-evaluating the base (``base``: its loss must not move), then ``mean`` and ``zeros`` on top of it.
    """
    base_model = load_pretrained(base)
    out: dict = {"strategies": {}, "levels": {}}
    for strategy in INIT_STRATEGIES:
        spaths = ArtifactPaths.from_config(paths.root, embeddings_dir=out_dir / strategy)
        align_embeddings(base_model, spaths, AlignSettings(init_strategy=strategy), model_name=base)
        model = install_embeddings(load_pretrained(base), *load_final_embeddings(spaths.embedding("final_wte"), spaths.embedding("final_lm_head")))
        out["strategies"][strategy] = {"domain": evaluate(model, blocks["remapped"], batch_size, reassigned)}
        if general_blocks is not None:
            out["strategies"][strategy]["general"] = evaluate(model, general_blocks, batch_size, reassigned)
    for level in levels:
        offset = level - native_log_partition
        shifted = shift_logits(load_pretrained(base), offset)
        row = {"offset": offset, "base": evaluate(shifted, blocks["original"], batch_size)}
        for strategy in ("mean", "zeros"):
            spaths = ArtifactPaths.from_config(paths.root, embeddings_dir=out_dir / f"level{level:g}" / strategy)
            align_embeddings(shifted, spaths, AlignSettings(init_strategy=strategy), model_name=base)
            model = install_embeddings(shift_logits(load_pretrained(base), offset), *load_final_embeddings(spaths.embedding("final_wte"), spaths.embedding("final_lm_head")))
            row[strategy] = evaluate(model, blocks["remapped"], batch_size, reassigned)
        out["levels"][f"{level:g}"] = row
    return out


def datamodule(args, base: str, tokenizer: str, init_strategy: str = "mean") -> IVRDataModule:
    return IVRDataModule(
        artifacts_dir=str(args.out / "artifacts"),
        builtin_corpus="python_stdlib",
        builtin_corpus_max_mb=args.corpus_mb,
        use_hub=args.use_hub,
        tokenizer=tokenizer,
        heldout_fraction=args.heldout_fraction,
        distill=DistillSettings(max_iterations=args.distill_iterations),
        align=AlignSettings(init_strategy=init_strategy),
        base_model_name_or_path=base,
        block_size=args.block_size,
        batch_size=args.batch_size,
    )


def finetune(args, base: str, tokenizer: str) -> tuple[IVRLanguageModel, IVRDataModule, dict]:
    dm = datamodule(args, base, tokenizer)
    dm.prepare_data()
    L.seed_everything(args.seed, verbose=False)
    module = IVRLanguageModel(
        model_name_or_path=base, learning_rate=args.lr, warmup_steps=args.warmup_steps,
        embedding_init=dm.embedding_init,
    )
    meter = Meter()
    started = time.perf_counter()
    trainer(args.steps, meter).fit(module, datamodule=dm)
    result = {"tokens_seen": meter.tokens, "bytes_seen": meter.bytes, "tokens_per_sec": meter.tokens_per_sec,
              "seconds": time.perf_counter() - started, "train_blocks": len(dm.datasets["train"])}
    return module, dm, result


def fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([title, line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "experiment", help="output directory")
    p.add_argument("--base", default=None, help="pretrained GPT-2 (Hub name or save_pretrained dir); skips pretraining")
    p.add_argument("--use-hub", action="store_true", help="fetch the original tokenizer from the Hub (default: offline copy)")
    p.add_argument("--seed", type=random_seed, default=0,
                   help="seed of the first base model's pretraining and of every fine-tuning run")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="base models pretrained (seeds --seed, --seed+1, ...) for the initialisation comparison; "
                        "the first is the one fine-tuned")
    p.add_argument("--logit-levels", type=lambda v: [float(x) for x in v.split(",") if x], default=[-50.0],
                   help="comma-separated mean log-partitions at which mean and zeros are re-evaluated on a "
                        "reparametrised base with the same predictions (shift_logits); '' for none")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count(),
                   help="torch threads (default: every core)")
    g = p.add_argument_group("base model pretraining (without --base)")
    g.add_argument("--n-layer", type=positive_int, default=2, help="transformer blocks of the base model")
    g.add_argument("--n-head", type=positive_int, default=2, help="attention heads per block")
    g.add_argument("--n-embd", type=positive_int, default=64, help="width of the base model")
    g.add_argument("--pretrain-steps", type=positive_int, default=300, help="optimizer steps of pretraining")
    g.add_argument("--pretrain-lr", type=positive_float, default=3e-3,
                   help="peak learning rate of pretraining (warm-up over its first tenth)")
    g.add_argument("--doc-mb", type=positive_float, default=2.0,
                   help="cap on /usr/share/doc text used for pretraining (MB)")
    g.add_argument("--general-heldout-fraction", type=fraction, default=0.2, help="share of help topics held out")
    g = p.add_argument_group("domain and fine-tuning")
    g.add_argument("--corpus-mb", type=positive_float, default=1.5,
                   help="Python stdlib sources used as the domain (MB)")
    g.add_argument("--heldout-fraction", type=fraction, default=0.1, help="share of domain files held out")
    g.add_argument("--distill-iterations", type=positive_int, default=4,
                   help="distillation fit rounds (library default 40)")
    g.add_argument("--steps", type=positive_int, default=200, help="fine-tuning optimizer steps, the same for every run")
    g.add_argument("--batch-size", type=positive_int, default=8,
                   help="blocks per optimizer step, pretraining and fine-tuning")
    g.add_argument("--block-size", type=two_or_more, default=64,
                   help="tokens per training block, the base model's positions and the evaluation window")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate of fine-tuning")
    g.add_argument("--warmup-steps", type=non_negative_int, default=20, help="linear warm-up steps of fine-tuning")
    g.add_argument("--eval-batch-size", type=positive_int, default=16, help="evaluation windows per forward pass")
    p.add_argument("--init-only", action="store_true",
                   help="stop after the initialisation comparison (no fine-tuning runs)")
    p.add_argument("--tables-only", action="store_true", help="print the tables of an earlier <out>/results.json")
    args = p.parse_args(argv)
    if args.tables_only:
        if not (args.out / "results.json").is_file():
            raise SystemExit(f"--tables-only: no {args.out / 'results.json'}; run without --tables-only first")
        try:
            results = read_json_object(args.out / "results.json")
        except ValueError as err:  # a damaged file: one line, not a traceback
            raise SystemExit(f"--tables-only: {err}") from None
        print_tables(results, argparse.Namespace(**results["args"]))
        return results

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    results: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}

    # domain corpus and the original tokenizer first: pretraining encodes with that tokenizer
    probe = datamodule(args, args.base or "unused", "original")
    probe.run_stage("init")
    original = load_tokenizer(probe.paths.original_tokenizer_dir)
    general_train, general_heldout = general_split(args.general_heldout_fraction, args.doc_mb)
    results["general_text"] = {
        "train_documents": len(general_train), "train_bytes": sum(len(t.encode()) for t in general_train),
        "heldout_documents": len(general_heldout), "heldout_bytes": sum(len(t.encode()) for t in general_heldout),
    }

    if args.base:
        bases = {args.seed: args.base}
        results["pretraining"] = None
    else:
        # one base per seed for the initialisation comparison; the first one is also fine-tuned
        bases, results["pretraining_by_seed"] = {}, {}
        for i in range(args.seeds):
            seed = args.seed + i
            base_dir = args.out / ("base" if i == 0 else f"base_seed{seed}")
            results["pretraining_by_seed"][seed] = pretrain(args, base_dir, general_train, original, seed)
            bases[seed] = str(base_dir)
            print(f"[{time.perf_counter() - clock:.0f}s] base model (seed {seed}): {base_dir}")
        results["pretraining"] = results["pretraining_by_seed"][args.seed]
    base = bases[args.seed]

    # the whole pipeline for the remapped tokenizer (mean init), then the datasets of both tokenizers
    ivr_dm = datamodule(args, base, "remapped")
    ivr_dm.prepare_data()
    base_dm = datamodule(args, base, "original")
    base_dm.prepare_data()
    paths = ivr_dm.paths
    remapped = load_tokenizer(paths.remapped_tokenizer_dir)
    reassigned = sorted(r.id for r in read_remap_rules(paths.remap_rules))
    distill_report = read_report(paths.distillation_report_json)
    results["pipeline"] = {"reassigned_ids": len(reassigned), "distillation_report": distill_report}
    print(f"[{time.perf_counter() - clock:.0f}s] pipeline done: {len(reassigned)} ids reassigned")

    domain_heldout = [d.text for d in iter_documents(paths.cleaned_corpora_dir, "heldout", args.heldout_fraction)]
    tokenizers = {"original": original, "remapped": remapped}
    domain_blocks = {name: whole_documents(tok, domain_heldout, args.block_size) for name, tok in tokenizers.items()}
    general_blocks = {name: whole_documents(tok, general_heldout, args.block_size) for name, tok in tokenizers.items()}
    tpb = {
        name: {"domain_heldout": tokens_per_byte(tok, domain_heldout), "general_heldout": tokens_per_byte(tok, general_heldout)}
        for name, tok in tokenizers.items()
    }
    results["tokens_per_byte"] = tpb

    def eval_model(model, tok_name: str, with_general: bool = True) -> dict:
        ids = reassigned if tok_name == "remapped" else None
        out = {"domain": evaluate(model, domain_blocks[tok_name], args.eval_batch_size, ids)}
        if with_general:
            out["general"] = evaluate(model, general_blocks[tok_name], args.eval_batch_size, ids)
        return out

    # before any fine-tuning: each base model, and the remapped tokenizer under each initialisation
    results["base_by_seed"], results["init_by_seed"] = {}, {}
    for seed, base_path in bases.items():
        first = seed == args.seed  # general-text evaluations for the first base only (time)
        results["base_by_seed"][seed] = eval_model(load_pretrained(base_path), "original", with_general=first)
        results["init_by_seed"][seed] = compare_inits(
            base_path, paths, args.out / "init_strategies" / f"seed{seed}", domain_blocks, reassigned,
            args.eval_batch_size, levels=args.logit_levels,
            native_log_partition=results["base_by_seed"][seed]["domain"]["log_partition"],
            general_blocks=general_blocks["remapped"] if first else None,
        )
        print(f"[{time.perf_counter() - clock:.0f}s] initialisation evaluations done (seed {seed})")
    results["base_model"] = results["base_by_seed"][args.seed]
    results["init_strategies"] = results["init_by_seed"][args.seed]["strategies"]

    results["runs"] = {}
    for run, tok_name in () if args.init_only else (("baseline", "original"), ("ivr_mean", "remapped")):
        module, dm, train = finetune(args, base, tok_name)
        results["runs"][run] = {"tokenizer": tok_name, "train": train, **eval_model(module.model, tok_name)}
        print(f"[{time.perf_counter() - clock:.0f}s] fine-tuned {run}")
    results["seconds"] = time.perf_counter() - clock

    save_results(args.out, results)
    print_tables(results, args)
    print(f"\nresults written to {args.out / 'results.json'} ({results['seconds']:.0f} s in all)")
    return results


def save_results(out: Path, results: dict) -> Path:
    """``<out>/results.json``, replaced whole (``--tables-only`` reads it back: a run stopped while writing it
    leaves the earlier file as it was)."""
    return write_text(out / "results.json", json.dumps(results, indent=2, default=str))


def spread(values: list[float]) -> str:
    """``mean ± sample standard deviation`` (just the value for one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def print_init_tables(results: dict) -> None:
    by_seed = results.get("init_by_seed") or {"-": {"strategies": results["init_strategies"], "levels": {}}}
    seeds = list(by_seed)
    first = by_seed[seeds[0]]["strategies"]
    share = first["mean"]["domain"]["reassigned_token_share"]
    get = lambda strategy, key: [by_seed[k]["strategies"][strategy]["domain"].get(key) for k in seeds]  # noqa: E731
    rows = [[strategy, *(fmt(v, ".3f") for v in get(strategy, "bits_per_byte")), spread(get(strategy, "bits_per_byte")),
             spread(get(strategy, "loss"))] for strategy in first]
    print()
    print(table(
        f"Remapped tokenizer right after initialisation, before fine-tuning: held-out domain bits per byte, one "
        f"base model per seed ({results['pipeline']['reassigned_ids']} ids reassigned; lower is better)",
        ["init", *(f"seed {k}" for k in seeds), "bpb mean ± sd", "loss/token mean ± sd"],
        rows,
    ))
    rows = [[strategy, spread(get(strategy, "loss_reassigned")), spread(get(strategy, "loss_other")),
             spread(get(strategy, "mass_reassigned")), fmt(first[strategy].get("general", {}).get("bits_per_byte"))]
            for strategy in first]
    print()
    print(table(
        f"The same, split by target (mean ± sd over seeds): reassigned ids are {100 * share:.1f}% of held-out "
        f"domain targets; 'mass' is the probability the model puts on them together, per position",
        ["init", "loss on reassigned-id targets", "loss on other targets", "mass on reassigned ids",
         f"general bpb (seed {seeds[0]})"],
        rows,
    ))
    bases = results.get("base_by_seed") or {"-": results["base_model"]}
    rows = [[str(k), fmt(b["domain"]["bits_per_byte"], ".3f"), fmt(b["domain"].get("log_partition"), ".2f"),
             fmt(b["domain"].get("target_logit"), ".2f"), fmt(b["domain"].get("mean_logit"), ".2f")]
            for k, b in bases.items()]
    print()
    print(table(
        "Base models' logits on held-out domain text (original tokenizer), averaged over positions. A row of zeros "
        "in a tied head gets logit 0, i.e. log-probability -(log-partition) each",
        ["seed", "domain bpb", "log-partition", "logit of the target", "mean logit over the vocabulary"],
        rows,
    ))
    rows = []
    for k in seeds:
        for level, r in by_seed[k].get("levels", {}).items():
            native = bases[k]["domain"]
            rows.append([str(k), level, f"{r['offset']:+.2f}", f"{native['loss']:.4f} -> {r['base']['loss']:.4f}",
                         *(fmt(r[s_]["bits_per_byte"], ".3f") for s_ in ("mean", "zeros")),
                         fmt(r["zeros"]["loss_reassigned"], ".2f"), fmt(r["zeros"]["mass_reassigned"], ".3f")])
    if rows:
        print()
        print(table(
            "The same base models reparametrised so that every logit moves by the same offset (shift_logits: "
            "identical predictions), to the log-partition 'level'; mean (like global_mean and random) moves with "
            "the rows, zeros does not",
            ["seed", "level", "offset", "base loss/token", "mean bpb", "zeros bpb", "zeros loss on reassigned",
             "zeros mass on reassigned"],
            rows,
        ))


def print_tables(results: dict, args) -> None:
    tpb = results["tokens_per_byte"]
    rows = []
    before = results["base_model"]
    rows.append(["base (no fine-tuning)", "original", fmt(before["domain"]["bits_per_byte"]),
                 fmt(before["general"]["bits_per_byte"]), fmt(tpb["original"]["domain_heldout"]), "-", "-", "-"])
    ivr0 = results["init_strategies"]["mean"]
    rows.append(["base + IVR mean init", "remapped", fmt(ivr0["domain"]["bits_per_byte"]),
                 fmt(ivr0.get("general", {}).get("bits_per_byte")), fmt(tpb["remapped"]["domain_heldout"]),
                 "-", "-", "-"])
    for run, r in results["runs"].items():
        t = r["train"]
        rows.append([f"{run} ({args.steps} steps)", r["tokenizer"], fmt(r["domain"]["bits_per_byte"]),
                     fmt(r["general"]["bits_per_byte"]), fmt(tpb[r["tokenizer"]]["domain_heldout"]),
                     str(t["tokens_seen"]), str(t["bytes_seen"]), fmt(t["tokens_per_sec"], ".0f")])
    print()
    print(table(
        f"Fine-tuning at equal compute ({args.steps} steps x {args.batch_size} x {args.block_size} tokens); "
        "bits per byte, lower is better",
        ["model", "tokenizer", "domain bpb (held-out)", "general bpb (held-out)", "domain tokens/byte",
         "train tokens", "train bytes", "train tokens/s"],
        rows,
    ))
    print_init_tables(results)
    sets = results["pipeline"]["distillation_report"].get("sets", {})
    exact = {k: 1 - v["mismatched_occurrences"] / max(v["word_occurrences"], 1) for k, v in sets.items()}
    print("\ndistilled tokenizer, share of word occurrences encoded exactly as GPT-2 BPE: "
          + ", ".join(f"{k} {100 * v:.2f}%" for k, v in exact.items()))
    g = results["general_text"]
    print(f"\ndomain held-out: {results['base_model']['domain']['bytes']} predicted bytes (original tokenizer); "
          f"general held-out: {g['heldout_documents']} help topics, {g['heldout_bytes']} bytes; "
          f"general pretraining text: {g['train_documents']} documents, {g['train_bytes']} bytes")


if __name__ == "__main__":
    main()

"""At equal compute, does IVR reach lower bits per byte on held-out domain text than plain fine-tuning,
and how much general ability does it keep?

1. Base model. With ``--base DIR_OR_NAME`` (``openai-community/gpt2``, or any ``save_pretrained`` directory)
   that model is used as is. Without it (offline: no GPT-2 weights), a small GPT-2-architecture model
   (GPT-2's 50257-id vocabulary and BPE tokenizer) is pretrained here on general English that exists
   offline: Python's help topics (``pydoc_data.topics``, what ``ivr.corpus.english_reference_texts`` returns)
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
   bytes seen; and, for every initialisation strategy (``mean``, ``global_mean``, ``random``, ``zeros``),
   the held-out domain loss and bits per byte right after initialisation, before any fine-tuning step.

Prints tables and writes ``<out>/results.json``. The defaults finish in about 15 minutes on 2 CPU cores:

    uv run python benchmarks/ivr_experiment.py --out artifacts/experiment

Scale up with e.g. ``--corpus-mb 8 --distill-iterations 40 --n-layer 4 --n-embd 256 --block-size 256
--pretrain-steps 3000 --steps 2000``, or fine-tune real GPT-2 with ``--base openai-community/gpt2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ivr.corpus import is_heldout, normalize  # noqa: E402
from ivr.data import IVRDataModule  # noqa: E402
from ivr.embeddings import (  # noqa: E402
    INIT_STRATEGIES,
    AlignSettings,
    align_embeddings,
    install_embeddings,
    load_final_embeddings,
    read_remap_rules,
)
from ivr.model import GPT2Shape, IVRLanguageModel, load_gpt2  # noqa: E402
from ivr.paths import ArtifactPaths  # noqa: E402
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes  # noqa: E402
from ivr.tokenizers.distill import DistillSettings  # noqa: E402
from ivr.tokenizers.io import load_tokenizer  # noqa: E402

LN2 = math.log(2.0)
log = logging.getLogger("ivr_experiment")


# ---- general English ---------------------------------------------------------------------------------------
def help_topics() -> list[tuple[str, str]]:
    """Python's help topics as (id, text): the texts of ``english_reference_texts``, with stable ids."""
    from pydoc_data.topics import topics

    return [(f"pydoc_topics/{k}", normalize(topics[k])) for k in sorted(topics)]


def doc_files(max_mb: float, root: Path = Path("/usr/share/doc")) -> list[str]:
    """UTF-8 plain-text files under ``/usr/share/doc`` (no compressed files), exact duplicates dropped."""
    if not root.is_dir() or max_mb <= 0:
        return []
    texts, seen, total = [], set(), 0
    for path in sorted(root.rglob("*")):
        if path.suffix in {".gz", ".xz", ".bz2", ".zip", ".png", ".jpg", ".svg", ".pdf", ".html", ".htm"}:
            continue
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 500_000:
                continue
            text = normalize(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        digest = hashlib.sha256(text.encode()).digest()
        if not text.strip() or "\x00" in text or digest in seen:
            continue
        seen.add(digest)
        texts.append(text)
        total += len(text.encode())
        if total > max_mb * 1e6:
            break
    return texts


def general_split(heldout_fraction: float, doc_mb: float) -> tuple[list[str], list[str]]:
    topics = help_topics()
    heldout = [t for i, t in topics if is_heldout(i, heldout_fraction)]
    train = [t for i, t in topics if not is_heldout(i, heldout_fraction)] + doc_files(doc_mb)
    return train, heldout


# ---- packing and evaluation --------------------------------------------------------------------------------
def byte_table(tok) -> np.ndarray:
    return np.array([len(piece_to_bytes(tok.id_to_token(i))) for i in range(tok.get_vocab_size())])


def pack(tok, texts: list[str], block_size: int) -> list[dict]:
    """Documents joined by ``<|endoftext|>`` and cut into blocks, as ``IVRDataModule`` packs them; ``n_bytes``
    counts the bytes of the predicted tokens (all but the first of each block)."""
    nbytes = byte_table(tok)
    ids = np.concatenate(
        [np.asarray(e.ids + [EOS_ID], dtype=np.int64) for e in tok.encode_batch(texts, add_special_tokens=False)]
    )
    n = len(ids) // block_size
    blocks = ids[: n * block_size].reshape(n, block_size)
    return [{"input_ids": torch.from_numpy(b.copy()), "n_bytes": torch.tensor(int(nbytes[b[1:]].sum()))} for b in blocks]


def tokens_per_byte(tok, texts: list[str]) -> float:
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return tokens / max(sum(len(t.encode()) for t in texts), 1)


@torch.no_grad()
def evaluate(model, blocks, batch_size: int, reassigned: list[int] | None = None) -> dict:
    """Summed next-token NLL over ``blocks``: loss per token, bits per byte, and loss on reassigned ids."""
    model.eval()
    nll = tokens = nbytes = 0.0
    r_nll = r_tokens = 0.0
    r_ids = torch.tensor(reassigned or [], dtype=torch.long)
    for batch in DataLoader(blocks, batch_size=batch_size):
        ids = batch["input_ids"]
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        targets = ids[:, 1:].reshape(-1)
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets, reduction="none")
        nll += losses.sum().item()
        tokens += targets.numel()
        nbytes += batch["n_bytes"].sum().item()
        if reassigned:
            mask = torch.isin(targets, r_ids)
            r_nll += losses[mask].sum().item()
            r_tokens += mask.sum().item()
    out = {
        "loss": nll / max(tokens, 1),
        "bits_per_byte": nll / LN2 / max(nbytes, 1),
        "tokens": int(tokens),
        "bytes": int(nbytes),
    }
    if reassigned:
        out["loss_reassigned"] = r_nll / r_tokens if r_tokens else None
        out["reassigned_token_share"] = r_tokens / max(tokens, 1)
    return out


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


def pretrain(args, base_dir: Path, train_texts: list[str], tok) -> dict:
    """Train a small GPT-2 from scratch on general English and ``save_pretrained`` it to ``base_dir``."""
    shape = GPT2Shape(
        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, n_positions=args.block_size, init_seed=args.seed
    )
    key = {"shape": asdict(shape), "steps": args.pretrain_steps, "lr": args.pretrain_lr, "batch": args.batch_size,
           "block": args.block_size, "data": hashlib.sha256("\0".join(train_texts).encode()).hexdigest()}
    stamp = base_dir / "pretrain.json"
    if stamp.is_file() and json.loads(stamp.read_text())["key"] == key and (base_dir / "config.json").is_file():
        print(f"pretrain: reusing {base_dir}")
        return json.loads(stamp.read_text())["result"]
    blocks = pack(tok, train_texts, args.block_size)
    print(f"pretrain: {len(train_texts)} documents, {len(blocks)} blocks of {args.block_size} tokens, "
          f"{args.pretrain_steps} steps of {args.batch_size} blocks")
    L.seed_everything(args.seed, verbose=False)
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
    stamp.write_text(json.dumps({"key": key, "result": result}, indent=2))
    return result


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
    module = IVRLanguageModel(model_name_or_path=base, learning_rate=args.lr, warmup_steps=args.warmup_steps)
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "experiment", help="output directory")
    p.add_argument("--base", default=None, help="pretrained GPT-2 (Hub name or save_pretrained dir); skips pretraining")
    p.add_argument("--use-hub", action="store_true", help="fetch the original tokenizer from the Hub (default: offline copy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    g = p.add_argument_group("base model pretraining (without --base)")
    g.add_argument("--n-layer", type=int, default=2)
    g.add_argument("--n-head", type=int, default=2)
    g.add_argument("--n-embd", type=int, default=64)
    g.add_argument("--pretrain-steps", type=int, default=300)
    g.add_argument("--pretrain-lr", type=float, default=3e-3)
    g.add_argument("--doc-mb", type=float, default=2.0, help="cap on /usr/share/doc text used for pretraining (MB)")
    g.add_argument("--general-heldout-fraction", type=float, default=0.2, help="share of help topics held out")
    g = p.add_argument_group("domain and fine-tuning")
    g.add_argument("--corpus-mb", type=float, default=1.5, help="Python stdlib sources used as the domain (MB)")
    g.add_argument("--heldout-fraction", type=float, default=0.1, help="share of domain files held out")
    g.add_argument("--distill-iterations", type=int, default=4, help="distillation fit rounds (library default 40)")
    g.add_argument("--steps", type=int, default=200, help="fine-tuning optimizer steps, the same for every run")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--block-size", type=int, default=64)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--warmup-steps", type=int, default=20)
    g.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--tables-only", action="store_true", help="print the tables of an earlier <out>/results.json")
    args = p.parse_args(argv)
    if args.tables_only:
        results = json.loads((args.out / "results.json").read_text())
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
        base = args.base
        results["pretraining"] = None
    else:
        base_dir = args.out / "base"
        results["pretraining"] = pretrain(args, base_dir, general_train, original)
        base = str(base_dir)
    print(f"[{time.perf_counter() - clock:.0f}s] base model: {base}")

    # the whole pipeline for the remapped tokenizer (mean init), then the datasets of both tokenizers
    ivr_dm = datamodule(args, base, "remapped")
    ivr_dm.prepare_data()
    base_dm = datamodule(args, base, "original")
    base_dm.prepare_data()
    paths = ivr_dm.paths
    remapped = load_tokenizer(paths.remapped_tokenizer_dir)
    reassigned = sorted(r.id for r in read_remap_rules(paths.remap_rules))
    distill_report = json.loads(paths.distillation_report_json.read_text())
    results["pipeline"] = {"reassigned_ids": len(reassigned), "distillation_report": distill_report}
    print(f"[{time.perf_counter() - clock:.0f}s] pipeline done: {len(reassigned)} ids reassigned")

    domain_heldout = [d.text for d in ivr_dm.documents("heldout")]
    domain_blocks = {}
    for name, dm in (("original", base_dm), ("remapped", ivr_dm)):
        dm.setup("validate")
        domain_blocks[name] = list(dm.datasets["validation"])
    tokenizers = {"original": original, "remapped": remapped}
    general_blocks = {name: pack(tok, general_heldout, args.block_size) for name, tok in tokenizers.items()}
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

    # before any fine-tuning: the base model, and the remapped tokenizer under each initialisation
    base_model = load_gpt2(base)
    results["base_model"] = eval_model(base_model, "original")
    results["init_strategies"] = {}
    for strategy in INIT_STRATEGIES:
        spaths = ArtifactPaths.from_config(paths.root, embeddings_dir=args.out / "init_strategies" / strategy)
        align_embeddings(base_model, spaths, AlignSettings(init_strategy=strategy), model_name=base)
        wte, head = load_final_embeddings(spaths)
        model = install_embeddings(load_gpt2(base), wte, head)
        results["init_strategies"][strategy] = eval_model(model, "remapped")
    print(f"[{time.perf_counter() - clock:.0f}s] initialisation evaluations done")

    results["runs"] = {}
    for run, tok_name in (("baseline", "original"), ("ivr_mean", "remapped")):
        module, dm, train = finetune(args, base, tok_name)
        results["runs"][run] = {"tokenizer": tok_name, "train": train, **eval_model(module.model, tok_name)}
        print(f"[{time.perf_counter() - clock:.0f}s] fine-tuned {run}")
    results["seconds"] = time.perf_counter() - clock

    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print_tables(results, args)
    print(f"\nresults written to {args.out / 'results.json'} ({results['seconds']:.0f} s in all)")
    return results


def print_tables(results: dict, args) -> None:
    tpb = results["tokens_per_byte"]
    rows = []
    before = results["base_model"]
    rows.append(["base (no fine-tuning)", "original", fmt(before["domain"]["bits_per_byte"]),
                 fmt(before["general"]["bits_per_byte"]), fmt(tpb["original"]["domain_heldout"]), "-", "-", "-"])
    ivr0 = results["init_strategies"]["mean"]
    rows.append(["base + IVR mean init", "remapped", fmt(ivr0["domain"]["bits_per_byte"]),
                 fmt(ivr0["general"]["bits_per_byte"]), fmt(tpb["remapped"]["domain_heldout"]), "-", "-", "-"])
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
    rows = []
    for strategy, r in results["init_strategies"].items():
        d = r["domain"]
        rows.append([strategy, fmt(d["loss"]), fmt(d["bits_per_byte"]), fmt(d.get("loss_reassigned")),
                     fmt(r["general"]["bits_per_byte"])])
    print()
    print(table(
        f"Remapped tokenizer right after initialisation, before fine-tuning "
        f"({results['pipeline']['reassigned_ids']} ids reassigned; reassigned tokens are "
        f"{100 * results['init_strategies']['mean']['domain']['reassigned_token_share']:.1f}% of held-out domain tokens)",
        ["init", "domain loss/token", "domain bpb", "domain loss on reassigned ids", "general bpb"],
        rows,
    ))
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

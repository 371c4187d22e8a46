"""Does IVR work on a real model? SmolLM2-135M (offline, from its packaged GGUF), three measurements:

1. the swap is invisible: the base model's bits per byte with the original BPE and with the distilled Unigram
   encoding of the same documents, and the share of tokens that differ;
2. every init strategy right after align, before training: held-out domain and general bits per byte, and the
   reassigned strings' bits per byte (the same bytes scored by the base model with the original tokenizer);
3. equal-compute fine-tuning: the original tokenizer (baseline) against IVR (all weights, only the embedding
   matrices, only the reassigned rows), identical steps x batch x block, bits per byte along training.

    uv run --no-sync --group smollm2 python benchmarks/real_model.py --preset cpu --out /tmp/real_model
    uv run --no-sync --group smollm2 python benchmarks/real_model.py --domain russian --artifacts-dir artifacts/real_model_ru

Domains: ``python`` (``configs/smollm2.yaml``'s built-in corpus, the standard library's sources: SmolLM2's tokenizer
already has code tokens) and ``russian`` (the Russian program messages under ``/usr/share/locale/ru``, one document
per catalogue, written as JSONL to the artifacts' ``corpora/raw``: a language SmolLM2's tokenizer cuts into many
short pieces).

It writes ``results.md`` (printed too), PNG plots and TensorBoard logs under ``--out``, and each init strategy's
rows as the align stage writes them (``ivr.embeddings.align_embeddings``) under ``--out``'s ``embeddings/<strategy>``;
part 2's "align time" is that stage's, its files written included. The artifacts come from
``ivr prepare --config configs/smollm2.yaml`` with ``--heldout-fraction`` as ``data.heldout_fraction``, run first
every time (it reuses the stages that are current). Part 3 trains with the config's optimiser settings and gradient
clipping (``--lr`` and ``--warmup`` aside). Every document is scored whole, in windows whose first token is the
last of the previous one and with the document separator in front, so each tokenizer's bits per byte covers
exactly the same bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path
from statistics import mean, stdev

import numpy as np
import torch
import yaml
from common import (
    EvalSet, Scores, bpb, comma_choices, config_heldout_fraction, encode, fraction, non_negative_int, parser,
    positive_float, positive_int, random_seed, score, two_or_more,
)

from ivr.atomic import atomic_file, write_text
from ivr.builtin_corpora import english_reference_texts, translated_messages
from ivr.causal_lm import load_pretrained
from ivr.cleaned_corpus import iter_documents
from ivr.embeddings import AlignSettings, align_embeddings, install_embeddings, is_tied, load_final_embeddings
from ivr.metrics import bits_per_byte
from ivr.model import EmbeddingInit, IVRLanguageModel
from ivr.packing import pack_blocks, token_byte_lengths
from ivr.paths import ArtifactPaths
from ivr.tokenizers.io import load_tokenizer, read_special_tokens
from ivr.tokenizers.remap_rules import read_remap_rules

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "smollm2.yaml"
# part 3 trains as `ivr fit --config configs/smollm2.yaml` would: its optimiser settings and gradient clipping
OPTIMISER_KEYS = ("weight_decay", "betas", "min_lr_ratio")
PRESETS = {
    # 2 CPU cores: a forward pass of 4,096 tokens takes ~17 s, a training step of 4 x 256 tokens ~25 s
    "cpu": dict(eval_tokens=12_288, train_eval_tokens=4_096, steps=16, eval_points=3, batch_size=4, block_size=256,
                window=512, eval_batch=4, seeds=3, warmup=2),
    "gpu": dict(eval_tokens=262_144, train_eval_tokens=65_536, steps=1_000, eval_points=6, batch_size=32, block_size=1024,
                window=1024, eval_batch=16, seeds=5, warmup=50),
}
STRATEGIES = ("mean", "omp", "global_mean", "zeros", "random")
ARMS = ("baseline", "ivr", "ivr_embeddings", "ivr_reassigned_rows")


def eval_documents(texts: list[str], tok, budget: int, max_chars: int = 6_000) -> list[str]:
    """Documents (each cut at the last line break before ``max_chars``) until ``budget`` tokens of ``tok``."""
    out, total = [], 0
    for text in texts:
        cut = text if len(text) <= max_chars else text[: text.rfind("\n", 0, max_chars) + 1 or max_chars]
        if not cut.strip():
            continue
        out.append(cut)
        total += len(tok.encode(cut, add_special_tokens=False).ids)
        if total >= budget:
            break
    return out


def reassigned_strings(scores: Scores, docs: EvalSet, ids: set[int], nbytes: np.ndarray, reference=None) -> tuple[float, float]:
    """(bits per byte, mean nats per token) over the tokens with a reassigned id. With ``reference`` (the base
    model's scores and encoding of the same documents), the same character spans scored by the reference."""
    nll, n_bytes, n_tokens = 0.0, 0, 0
    for d, doc_ids in enumerate(docs.ids):
        hit = np.isin(doc_ids, list(ids))
        n_tokens += int(hit.sum())
        n_bytes += int(nbytes[doc_ids[hit]].sum())
        if reference is None:
            nll += float(scores.nll[d][hit].sum())
            continue
        ref_scores, ref_docs = reference
        starts, ends = ref_docs.offsets[d][:, 0], ref_docs.offsets[d][:, 1]
        for s, e in docs.offsets[d][hit]:
            inside = (starts >= s) & (ends <= e)
            nll += float(ref_scores.nll[d][inside].sum())
    return bits_per_byte(nll, n_bytes), nll / max(n_tokens, 1)


def differing_share(a: EvalSet, b: EvalSet) -> float:
    """Share of the first encoding's tokens that are not matched, in order, by the second's."""
    total = sum(len(x) for x in a.ids)
    same = sum(
        len(x) if np.array_equal(x, y) else sum(m.size for m in SequenceMatcher(None, x.tolist(), y.tolist(), autojunk=False).get_matching_blocks())
        for x, y in zip(a.ids, b.ids)
    )
    return 1 - same / total


def fmt(values: list[float], digits: int = 4) -> str:
    return f"{values[0]:.{digits}f}" if len(values) == 1 else f"{mean(values):.{digits}f} ± {stdev(values):.{digits}f}"


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.paths = ArtifactPaths.from_config(ROOT / args.artifacts_dir)
        self.config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
        self.model_spec = self.config["model"]["model_name_or_path"]
        p = self.paths
        self.tok = {name: load_tokenizer(d) for name, d in [("original", p.original_tokenizer_dir),
                    ("distilled", p.distilled_tokenizer_dir), ("remapped", p.remapped_tokenizer_dir)]}
        self.separator = read_special_tokens(p.original_tokenizer_dir).separator_id
        self.nbytes = {name: token_byte_lengths(t, self.separator) for name, t in self.tok.items()}
        self.rules = read_remap_rules(p.remap_rules)
        self.reassigned = {r.id for r in self.rules}
        domain = [d.text for d in iter_documents(p.cleaned_corpora_dir, "heldout", args.heldout_fraction)]
        texts = {"domain": domain, "general": english_reference_texts()}
        self.texts = {k: eval_documents(v, self.tok["original"], args.eval_tokens) for k, v in texts.items()}
        self.sets = {(k, name): encode(t, v) for k, v in self.texts.items() for name, t in self.tok.items()}
        self.lines: list[str] = []
        self.results: dict = {"args": vars(args)}

    def scores(self, model, tokenizer: str, sets=("domain", "general")) -> dict[str, Scores]:
        a = self.args
        return {k: score(model, self.sets[(k, tokenizer)], self.separator, a.window, a.eval_batch) for k in sets}

    def emit(self, *lines: str) -> None:
        """Print ``lines`` and rewrite the results so far, each file replaced whole (a run stopped early, even while
        writing, keeps its finished parts)."""
        self.lines.extend(lines)
        print(*lines, sep="\n", flush=True)
        write_text(self.out / "results.md", "\n".join(self.lines) + "\n")
        write_text(self.out / "results.json", json.dumps(self.results, indent=1, default=str))

    def base(self):
        return load_pretrained(self.model_spec)

    # ---- part 1 ----
    def part1(self, model) -> dict[str, Scores]:
        started = time.perf_counter()
        base = {name: self.scores(model, name) for name in ("original", "distilled")}
        rows = []
        for k in ("domain", "general"):
            o = bpb(base["original"][k], self.sets[(k, "original")], self.nbytes["original"])
            d = bpb(base["distilled"][k], self.sets[(k, "distilled")], self.nbytes["distilled"])
            share = differing_share(self.sets[(k, "original")], self.sets[(k, "distilled")])
            n_tok = sum(len(x) for x in self.sets[(k, "original")].ids)
            n_bytes = sum(len(t.encode()) for t in self.texts[k])
            rows.append((k, len(self.texts[k]), n_tok, n_bytes, o, d, (d - o) / o, share))
            self.results.setdefault("part1", {})[k] = dict(original=o, distilled=d, relative=(d - o) / o, differing_share=share)
        self.emit("", "### 1. The swap is invisible (base model, no training)", "",
                  "| set | documents | tokens (BPE) | bytes | bpb, original BPE | bpb, distilled Unigram | relative difference | tokens that differ |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |",
                  *[f"| {k} | {n} | {t} | {b} | {o:.5f} | {d:.5f} | {r:+.4%} | {s:.4%} |" for k, n, t, b, o, d, r, s in rows],
                  "", f"({time.perf_counter() - started:.0f} s)")
        return base["original"]

    # ---- part 2 ----
    def align(self, model, strategy: str, seed: int = 0) -> ArtifactPaths:
        """The align stage from ``model``'s rows with ``strategy`` (``seed``: the ``random`` draw's), its files in
        ``<out>/embeddings/<strategy>``; returns the artifacts' paths with that embeddings folder."""
        paths = ArtifactPaths.from_config(self.paths.root, embeddings_dir=self.out / "embeddings" / strategy)
        align_embeddings(model, paths, AlignSettings(init_strategy=strategy, seed=seed), model_name=self.model_spec)
        return paths

    def part2(self, model, base_scores: dict[str, Scores]) -> None:
        a = self.args
        wte = model.get_input_embeddings().weight.detach().clone()
        head = None if is_tied(model) else model.get_output_embeddings().weight.detach().clone()
        ref = {k: bpb(base_scores[k], self.sets[(k, "original")], self.nbytes["original"]) for k in ("domain", "general")}
        base_r = reassigned_strings(None, self.sets[("domain", "remapped")], self.reassigned, self.nbytes["remapped"],
                                    (base_scores["domain"], self.sets[("domain", "original")]))[0]
        table, timings = {}, {}
        for strategy in a.strategies:
            for seed in range(a.seeds if strategy == "random" else 1):
                started = time.perf_counter()
                paths = self.align(model, strategy, seed)
                timings[strategy] = time.perf_counter() - started
                install_embeddings(model, *load_final_embeddings(paths.embedding("final_wte"),
                                                                 paths.embedding("final_lm_head")))
                s = self.scores(model, "remapped")
                d = self.sets[("domain", "remapped")]
                r_bpb, r_nats = reassigned_strings(s["domain"], d, self.reassigned, self.nbytes["remapped"])
                entry = table.setdefault(strategy, {"domain": [], "general": [], "reassigned_bpb": [], "reassigned_nats": []})
                entry["domain"].append(bpb(s["domain"], d, self.nbytes["remapped"]))
                entry["general"].append(bpb(s["general"], self.sets[("general", "remapped")], self.nbytes["remapped"]))
                entry["reassigned_bpb"].append(r_bpb)
                entry["reassigned_nats"].append(r_nats)
                print(strategy, seed, {k: v[-1] for k, v in entry.items()}, flush=True)
                install_embeddings(model, wte, head)  # the next strategy is aligned from the base model's own rows
        hits = sum(int(np.isin(x, list(self.reassigned)).sum()) for x in self.sets[("domain", "remapped")].ids)
        n_rem = sum(len(x) for x in self.sets[("domain", "remapped")].ids)
        n_orig = sum(len(x) for x in self.sets[("domain", "original")].ids)
        self.results["part2"] = {"base": {**ref, "reassigned_bpb": base_r}, "strategies": table, "align_seconds": timings}
        self.emit("", "### 2. Right after align, before any training", "",
                  f"Held-out domain text: {n_orig} tokens with the original BPE, {n_rem} remapped ({1 - n_rem / n_orig:.1%} "
                  f"fewer), {hits} of them reassigned ids." + (f" Random: mean ± sd over {a.seeds} seeds." if "random" in table else ""), "",
                  "| model | domain bpb | general bpb | reassigned strings, bpb | loss on reassigned targets, nats/token | align time, s |",
                  "| --- | --- | --- | --- | --- | --- |",
                  f"| base model, original tokenizer | {ref['domain']:.4f} | {ref['general']:.4f} | {base_r:.4f} | – | – |",
                  *[f"| IVR, `{k}` | {fmt(v['domain'])} | {fmt(v['general'])} | {fmt(v['reassigned_bpb'])} | "
                    f"{fmt(v['reassigned_nats'], 3)} | {timings[k]:.1f} |" for k, v in table.items()])
        self.plot_part2(table, ref, base_r)

    def plot_part2(self, table: dict, ref: dict, base_r: float) -> None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.emit("", "(matplotlib missing: no plot)")
            return
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        names = list(table)
        for ax, key, title, line in zip(axes, ("domain", "general", "reassigned_bpb"),
                                        ("held-out domain bpb", "general bpb", "reassigned strings, bpb"),
                                        (ref["domain"], ref["general"], base_r)):
            values = [table[n][key] for n in names]
            ax.bar(names, [mean(v) for v in values], yerr=[stdev(v) if len(v) > 1 else 0 for v in values], color="tab:blue")
            ax.axhline(line, color="tab:red", ls="--", label="base, original tokenizer")
            ax.set_title(title)
            ax.set_yscale("log")
            ax.tick_params(axis="x", rotation=30)
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(self.out / "real_model_init.png", dpi=110)
        self.emit("", f"Plot: `{self.out / 'real_model_init.png'}`")

    # ---- part 3 ----
    def train_blocks(self, tokenizer: str) -> list[dict]:
        a = self.args
        docs = [d.text for d in iter_documents(self.paths.cleaned_corpora_dir, "train", a.heldout_fraction)]
        rng = np.random.default_rng(a.data_seed)
        order = rng.permutation(len(docs))
        need, blocks = a.steps * a.batch_size, []
        for ids, nbytes in pack_blocks(self.tok[tokenizer], (docs[i] for i in order), a.block_size, self.separator, docs_per_batch=8):
            blocks.extend(zip(ids, nbytes))
            if len(blocks) >= need:
                break
        if not blocks:
            raise SystemExit(f"{tokenizer}: the training split holds no block of {a.block_size} tokens")
        passes = -(-need // len(blocks))
        if passes > 1:  # a corpus shorter than the run (the gpu preset on 8 MB): further passes, each reshuffled
            print(f"{tokenizer}: {len(blocks)} training blocks for {need}: {passes} passes over the training split")
            blocks = blocks + [blocks[i] for _ in range(passes - 1) for i in rng.permutation(len(blocks))]
        blocks = blocks[:need]
        return [{"input_ids": torch.from_numpy(np.stack([b[0] for b in blocks[i : i + a.batch_size]])),
                 "n_bytes": torch.tensor([int(b[1]) for b in blocks[i : i + a.batch_size]])}
                for i in range(0, need, a.batch_size)]

    def part3(self) -> None:
        from lightning.pytorch import Callback, Trainer
        from lightning.pytorch.loggers import TensorBoardLogger

        a = self.args
        small = {k: eval_documents(self.texts[k], self.tok["original"], a.train_eval_tokens) for k in ("domain", "general")}
        points = sorted({round(a.steps * i / (a.eval_points - 1)) for i in range(a.eval_points)})
        curves, bench = {}, self

        init = None
        if a.arms != ["baseline"]:
            paths = self.align(self.base(), a.train_init)
            init = EmbeddingInit.from_paths(paths)
        for arm in a.arms:
            tokenizer = "original" if arm == "baseline" else "remapped"
            sets = {k: encode(self.tok[tokenizer], v) for k, v in small.items()}
            module = IVRLanguageModel(model_name_or_path=self.model_spec,
                                      embedding_init=None if arm == "baseline" else init,
                                      train_only={"ivr_embeddings": "embeddings", "ivr_reassigned_rows": "reassigned_rows"}.get(arm, "all"),
                                      learning_rate=a.lr, warmup_steps=a.warmup,
                                      **{k: v for k, v in self.config["model"].items() if k in OPTIMISER_KEYS})
            module.configure_model()
            self.results["optimiser"] = {k: getattr(module.hparams, k)
                                         for k in ("learning_rate", "warmup_steps", *OPTIMISER_KEYS)}
            curve = curves.setdefault(arm, {"step": [], "bytes": [], "domain": [], "general": []})
            self.results["part3"] = {"points": points, "curves": curves}
            seen = {"bytes": 0}

            def evaluate(step: int, logger=None, curve=curve, sets=sets, tokenizer=tokenizer, module=module) -> None:
                started = time.perf_counter()
                values = {k: bpb(score(module.model, v, bench.separator, a.window, a.eval_batch), v, bench.nbytes[tokenizer])
                          for k, v in sets.items()}
                module.model.train()
                curve["step"].append(step)
                curve["bytes"].append(seen["bytes"])
                for k, v in values.items():
                    curve[k].append(v)
                if logger is not None:
                    logger.log_metrics({f"eval/{k}_bits_per_byte": v for k, v in values.items()}, step=step)
                print(arm, step, values, f"({time.perf_counter() - started:.0f} s)", flush=True)

            class Points(Callback):
                def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                    seen["bytes"] += int(batch["n_bytes"].sum())
                    if trainer.global_step in points:
                        evaluate(trainer.global_step, trainer.logger)

            logger = TensorBoardLogger(str(self.out / "tensorboard"), name=arm, version=0)
            evaluate(0, logger)
            started = time.perf_counter()
            trainer = Trainer(max_steps=a.steps, accelerator=a.accelerator, devices=1, precision=a.precision, logger=logger,
                              callbacks=[Points()], enable_checkpointing=False, log_every_n_steps=1,
                              gradient_clip_val=self.config["trainer"].get("gradient_clip_val"),
                              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
            trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(self.train_blocks(tokenizer), batch_size=None))
            curve["train_seconds"] = time.perf_counter() - started
            del module, trainer
        self.results["part3"] = {"points": points, "curves": curves}
        self.report_part3(curves, points)

    def report_part3(self, curves: dict, points: list[int]) -> None:
        a = self.args
        tokens = a.steps * a.batch_size * a.block_size
        header = " | ".join(f"step {p}" for p in points)
        o = self.results["optimiser"]
        self.emit("", "### 3. Fine-tuning at equal compute", "",
                  f"Every arm: {a.steps} steps x {a.batch_size} blocks x {a.block_size} tokens ({tokens} tokens), AdamW "
                  f"lr {o['learning_rate']}, betas {tuple(o['betas'])}, warm-up {o['warmup_steps']}, cosine to "
                  f"{o['min_lr_ratio']}x, weight decay {o['weight_decay']}, clip "
                  f"{self.config['trainer'].get('gradient_clip_val')}, init `{a.train_init}`. "
                  f"Evaluated on the first ~{a.train_eval_tokens} BPE tokens of each held-out set.", "",
                  f"| arm | set | {header} | bytes trained on | train time, s |",
                  "| --- | --- |" + " --- |" * len(points) + " --- | --- |")
        for arm, c in curves.items():
            for k in ("domain", "general"):
                self.emit(f"| {arm} | {k} | " + " | ".join(f"{v:.4f}" for v in c[k]) + f" | {c['bytes'][-1]} | {c['train_seconds']:.0f} |")
        base = curves.get("baseline")
        if base and "ivr" in curves:
            target = base["domain"][-1]
            reached = next((s for s, v in zip(curves["ivr"]["step"], curves["ivr"]["domain"]) if v <= target), None)
            self.emit("", f"Baseline's final domain bpb {target:.4f}; IVR reaches it at step "
                      f"{reached if reached is not None else 'never (within the run)'}. General bpb, IVR vs baseline at the end: "
                      f"{curves['ivr']['general'][-1]:.4f} vs {base['general'][-1]:.4f} "
                      f"({curves['ivr']['general'][-1] / base['general'][-1] - 1:+.2%}).")
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for ax, k in zip(axes, ("domain", "general")):
            for arm, c in curves.items():
                ax.plot(c["step"], c[k], marker="o", label=arm)
            ax.set_title(f"held-out {k} bits per byte")
            ax.set_xlabel("training step (equal tokens per step)")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(self.out / "real_model_finetune.png", dpi=110)
        self.emit("", f"Plot: `{self.out / 'real_model_finetune.png'}`")


def domain_overrides(domain: str, raw: Path) -> list[str]:
    """``ivr prepare`` options that make ``domain`` the corpus (none for the config's own), written to ``raw``."""
    if domain == "python":
        return []
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / "ru_messages.jsonl"
    records = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for _, text in translated_messages("ru"))
    if not path.is_file() or path.read_text(encoding="utf-8") != records:  # rewritten, it would be cleaned again
        with atomic_file(path) as tmp:
            tmp.write_text(records, encoding="utf-8")
    return ["--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(raw)]


def at_least_two(value: str) -> int:
    number = int(value)
    if number < 2:
        raise argparse.ArgumentTypeError(f"{number}: at least 2 (step 0 and the last step)")
    return number


# the preset options' types where not positive_int: a block or window holds inputs and their next-token targets,
# and 0 warm-up steps start at the peak rate
PRESET_TYPES = {"eval_points": at_least_two, "block_size": two_or_more, "window": two_or_more,
                "warmup": non_negative_int}


def main() -> None:
    lr = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["model"]["learning_rate"]
    ap = parser(__doc__)
    ap.add_argument("--preset", choices=list(PRESETS), default="cpu", help="sizes; any flag below overrides one")
    ap.add_argument("--out", default="/tmp/real_model", help="results.md, results.json, plots, tensorboard/")
    ap.add_argument("--artifacts-dir", help="data.artifacts_dir of ivr prepare (default: artifacts/real_model, "
                    "artifacts/real_model_ru with --domain russian)")
    ap.add_argument("--domain", choices=["python", "russian"], default="python",
                    help="corpus of the artifacts, used when ivr prepare runs (each domain has its own --artifacts-dir)")
    ap.add_argument("--parts", type=comma_choices(("1", "2", "3")), default="1,2,3",
                    help="which parts to run, comma-separated")
    ap.add_argument("--heldout-fraction", type=fraction, default=config_heldout_fraction(CONFIG),
                    help="data.heldout_fraction of ivr prepare and of every evaluation set drawn from its corpus "
                         "(default: the config's, %(default)s)")
    ap.add_argument("--strategies", type=comma_choices(STRATEGIES), default=",".join(STRATEGIES),
                    help="part 2: init strategies, comma-separated")
    ap.add_argument("--arms", type=comma_choices(ARMS), default=",".join(ARMS),
                    help="part 3, comma-separated: " + ", ".join(ARMS))
    ap.add_argument("--train-init", default="mean", choices=STRATEGIES, help="part 3: init of the IVR arms")
    ap.add_argument("--lr", type=positive_float, default=None,
                    help=f"part 3: peak learning rate (default: configs/smollm2.yaml's model.learning_rate, {lr})")
    ap.add_argument("--data-seed", type=random_seed, default=0, help="part 3: order of the training documents")
    ap.add_argument("--accelerator", default="auto", help="part 3: Lightning's accelerator (cpu, gpu, auto)")
    ap.add_argument("--precision", default="32-true", help="part 3: bf16-mixed on a GPU")
    for key, value in PRESETS["cpu"].items():
        ap.add_argument(f"--{key.replace('_', '-')}", type=PRESET_TYPES.get(key, positive_int), default=None,
                        help=f"preset cpu: {value}, gpu: {PRESETS['gpu'][key]}")
    args = ap.parse_args()
    args.lr = lr if args.lr is None else args.lr
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    # each domain its own artifacts: another domain's would be found current and reused
    args.artifacts_dir = args.artifacts_dir or {"python": "artifacts/real_model", "russian": "artifacts/real_model_ru"}[args.domain]
    parts = {int(p) for p in args.parts}
    paths = ArtifactPaths.from_config(ROOT / args.artifacts_dir)
    # every run: prepare reuses the stages that are current and rebuilds those made with other settings (another
    # --heldout-fraction), so the held-out sets below were never fitted on
    subprocess.run([sys.executable, "-m", "ivr.cli", "prepare", "--config", str(CONFIG), "--data.artifacts_dir",
                    args.artifacts_dir, "--data.heldout_fraction", str(args.heldout_fraction),
                    *domain_overrides(args.domain, paths.raw_corpora_dir)], check=True, cwd=ROOT)
    torch.manual_seed(0)
    bench = Bench(args)
    bench.emit(f"Command: `{' '.join(sys.argv)}`; {torch.get_num_threads()} threads.")
    if parts & {1, 2}:
        model = bench.base()
        base_scores = bench.part1(model)
        if 2 in parts:
            bench.part2(model, base_scores)
        del model
    if 3 in parts:
        bench.part3()


if __name__ == "__main__":
    main()

"""Training throughput of one GPT-2 in a plain PyTorch loop vs through ``lightning.Trainer``.

Both variants start from the same weights, see the same batches and run the same optimiser and learning-rate
schedule; the timed window skips ``--warmup`` steps and ends after ``--steps`` more, so Trainer setup is excluded
from tokens/s (it is reported separately as fit wall time).

The LightningModule is the project's ``ivr.model.IVRLanguageModel``; the plain loop computes the same loss
(``ivr.metrics.token_nll``) and steps the optimiser and schedule the module's ``configure_optimizers`` builds
(AdamW with its weight-decay groups). ``--repeats`` alternates the order of the two variants and reports
medians, since a shared machine drifts.

    uv run python benchmarks/throughput_benchmark.py --n-embd 128 --n-layer 2 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel

from common import non_negative_int, positive_float, positive_int, random_seed, two_or_more

from ivr.causal_lm import ModelShape
from ivr.metrics import token_nll
from ivr.model import IVRLanguageModel


def lightning_module(model: GPT2LMHeadModel, lr: float) -> L.LightningModule:
    """The project's ``IVRLanguageModel`` holding ``model`` (its own loss, optimiser, scheduler and logging)."""
    c = model.config
    shape = ModelShape(
        n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, n_positions=c.n_positions, vocab_size=c.vocab_size
    )
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, learning_rate=lr, warmup_steps=0)
    # configure_model keeps a model already set, so both variants train identical weights
    module.model = model
    return module


def make_batches(n: int, batch_size: int, seq_len: int, vocab: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, vocab, (batch_size, seq_len), generator=generator)
        # n_bytes feeds the module's bits-per-byte logging; the plain loop ignores it
        out.append({"input_ids": ids, "n_bytes": torch.full((batch_size,), 4 * seq_len)})
    return out


def fresh_model(config: GPT2Config, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).train()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def module_optimiser(model: GPT2LMHeadModel, lr: float, steps: int):
    """The optimiser and learning-rate schedule ``IVRLanguageModel.configure_optimizers`` builds for a fit of
    ``steps`` steps (it reads the fit's length from a trainer, which is only constructed here, never fitted)."""
    module = lightning_module(model, lr)
    module.trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, logger=False,
                               enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    optimisers = module.configure_optimizers()
    return optimisers["optimizer"], optimisers["lr_scheduler"]["scheduler"]


def plain_loop(config, batches, warmup, device, lr, seed) -> tuple[float, float]:
    """(timed seconds, fit wall seconds) for a hand-written loop."""
    start = time.perf_counter()
    model = fresh_model(config, seed).to(device)
    optimizer, schedule = module_optimiser(model, lr, len(batches))
    timed_from = None
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            timed_from = time.perf_counter()
        ids = batch["input_ids"].to(device, non_blocking=True)
        token_losses, _ = token_nll(model(input_ids=ids, use_cache=False).logits, ids)
        loss = token_losses.mean()
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    end = time.perf_counter()
    return end - timed_from, end - start


class WindowTimer(L.Callback):
    """Times from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        self.end = time.perf_counter()


def lightning_loop(config, batches, warmup, device, lr, seed) -> tuple[float, float]:
    """(timed seconds, fit wall seconds) for the same work through ``Trainer.fit``."""
    start = time.perf_counter()
    module = lightning_module(fresh_model(config, seed), lr)
    timer = WindowTimer(warmup, device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_steps=len(batches),
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    # batch_size=None: the loader yields the prebuilt batches unchanged
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return timer.end - timer.start, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-embd", type=positive_int, default=128, help="width of the GPT-2 (768 for GPT-2 124M)")
    parser.add_argument("--n-layer", type=positive_int, default=2, help="transformer blocks (12 for GPT-2 124M)")
    parser.add_argument("--n-head", type=positive_int, default=4,
                        help="attention heads per block (12 for GPT-2 124M)")
    parser.add_argument("--vocab-size", type=positive_int, default=50257,
                        help="vocabulary rows (GPT-2's by default)")
    parser.add_argument("--seq-len", type=two_or_more, default=128,
                        help="tokens per sequence, also the model's positions")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="sequences per step")
    parser.add_argument("--steps", type=positive_int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps before the window")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="peak learning rate of both variants")
    parser.add_argument("--seed", type=random_seed, default=0, help="seed of the weights and the random batches")
    parser.add_argument("--repeats", type=positive_int, default=1, help="runs of each variant, order alternating")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda where there is one)")
    args = parser.parse_args()

    device = torch.device(args.device)
    config = GPT2Config(
        vocab_size=args.vocab_size,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_positions=args.seq_len,
    )
    batches = make_batches(args.warmup + args.steps, args.batch_size, args.seq_len, args.vocab_size, args.seed)
    tokens = args.steps * args.batch_size * args.seq_len

    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "lightning": []}
    for r in range(args.repeats):
        for name in ("plain", "lightning") if r % 2 == 0 else ("lightning", "plain"):
            loop = plain_loop if name == "plain" else lightning_loop
            runs[name].append(loop(config, batches, args.warmup, device, args.lr, args.seed))
    plain_s, plain_wall = (statistics.median(x) for x in zip(*runs["plain"], strict=True))
    light_s, light_wall = (statistics.median(x) for x in zip(*runs["lightning"], strict=True))

    params = sum(p.numel() for p in fresh_model(config, args.seed).parameters())
    print(
        f"\nmodel: GPT-2 n_embd={args.n_embd} n_layer={args.n_layer} n_head={args.n_head} ({params / 1e6:.1f}M params)"
    )
    print(
        f"device: {device}, torch threads: {torch.get_num_threads()}, batch {args.batch_size}x{args.seq_len}, "
        f"{args.steps} timed steps after {args.warmup} warmup, median of {args.repeats} run(s) each"
    )
    print()
    print(f"{'variant':<10} {'tokens':>8} {'timed s':>9} {'tokens/s':>10} {'fit wall s':>11}")
    for name, seconds, wall in (("plain", plain_s, plain_wall), ("lightning", light_s, light_wall)):
        print(f"{name:<10} {tokens:>8} {seconds:>9.3f} {tokens / seconds:>10.0f} {wall:>11.3f}")
    print(f"\nlightning / plain throughput: {plain_s / light_s:.3f}")


if __name__ == "__main__":
    main()

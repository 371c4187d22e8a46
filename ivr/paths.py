"""Every artifact path, decided in one place and rooted at ``data.artifacts_dir``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"  # a tokenizer directory's one file that ``tokenizers`` loads


@dataclass(frozen=True)
class ArtifactPaths:
    """The artifact tree. Only ``root``, the two corpus folders and the embeddings folder can be moved."""

    root: Path
    raw_corpora_dir: Path
    cleaned_corpora_dir: Path
    embeddings_dir: Path

    @classmethod
    def from_config(
        cls,
        artifacts_dir: str | Path,
        raw_corpora_dir: str | Path | None = None,
        cleaned_corpora_dir: str | Path | None = None,
        embeddings_dir: str | Path | None = None,
    ) -> "ArtifactPaths":
        # ~ as a shell reads it: a config file or a quoted flag passes it on as written
        root = Path(artifacts_dir).expanduser()
        return cls(
            root=root,
            raw_corpora_dir=Path(raw_corpora_dir).expanduser() if raw_corpora_dir else root / "corpora" / "raw",
            cleaned_corpora_dir=(Path(cleaned_corpora_dir).expanduser() if cleaned_corpora_dir
                                 else root / "corpora" / "cleaned"),
            embeddings_dir=Path(embeddings_dir).expanduser() if embeddings_dir else root / "embeddings",
        )

    # tokenizers
    @property
    def tokenizers_dir(self) -> Path:
        return self.root / "tokenizers"

    @property
    def original_tokenizer_dir(self) -> Path:
        return self.tokenizers_dir / "original"

    @property
    def distilled_tokenizer_dir(self) -> Path:
        return self.tokenizers_dir / "distilled_unigram"

    @property
    def remapped_tokenizer_dir(self) -> Path:
        return self.tokenizers_dir / "remapped"

    @property
    def remap_rules(self) -> Path:
        return self.remapped_tokenizer_dir / "remap_rules.yaml"

    def tokenizer_dir(self, which: str) -> Path:
        """The directory of the ``original``, ``distilled`` or ``remapped`` tokenizer."""
        dirs = {
            "original": self.original_tokenizer_dir,
            "distilled": self.distilled_tokenizer_dir,
            "remapped": self.remapped_tokenizer_dir,
        }
        if which not in dirs:
            raise ValueError(f"unknown tokenizer {which!r}; expected one of {sorted(dirs)}")
        return dirs[which]

    def tokenizer_file(self, which: str) -> Path:
        """The ``tokenizer.json`` of the ``original``, ``distilled`` or ``remapped`` tokenizer."""
        return self.tokenizer_dir(which) / TOKENIZER_FILE

    # analysis reports
    @property
    def reports_dir(self) -> Path:
        return self.root / "analysis" / "reports"

    @property
    def bpe_token_id_sequences(self) -> Path:
        return self.reports_dir / "bpe_token_id_sequences.txt"

    @property
    def token_frequency(self) -> Path:
        return self.reports_dir / "token_frequency.parquet"

    @property
    def distilled_pretokens(self) -> Path:
        """Both splits' distilled pre-tokens per document, and the training split's counts
        (``ivr.analysis.pretoken_table``)."""
        return self.root / "analysis" / "distilled_pretokens"

    @property
    def distillation_report_md(self) -> Path:
        return self.reports_dir / "distillation_report.md"

    @property
    def distillation_report_json(self) -> Path:
        return self.reports_dir / "distillation_report.json"

    @property
    def replacement_candidates(self) -> Path:
        return self.reports_dir / "replacement_candidates.csv"

    @property
    def selection_log(self) -> Path:
        return self.reports_dir / "selection_log.md"

    @property
    def savings_curve(self) -> Path:
        """The selection's savings curve (held-out saving against ids reassigned), a PNG beside its log."""
        return self.reports_dir / "savings_curve.png"

    @property
    def remap_report_md(self) -> Path:
        return self.reports_dir / "remap_report.md"

    @property
    def remap_report_json(self) -> Path:
        return self.reports_dir / "remap_report.json"

    # embeddings
    def embedding(self, name: str) -> Path:
        """``original_wte``, ``original_wpe``, ``aligned_wte`` or ``final_wte`` as a ``.pt`` file."""
        return self.embeddings_dir / f"{name}.pt"

    def embedding_metadata(self, name: str) -> Path:
        return self.embeddings_dir / f"{name}.json"

    # bookkeeping: one stamp per stage records the inputs its outputs were built from
    def stamp(self, stage: str) -> Path:
        return self.root / "stamps" / f"{stage}.json"

    @property
    def lock(self) -> Path:
        """Held while a stage checks and builds its outputs: a second run waits, then reuses them."""
        return self.root / ".lock"

    # training
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def dataset_dir(self, tokenizer: str, key: str) -> Path:
        """The packed blocks of ``tokenizer``'s text, one folder per cache ``key`` (a hash of what they depend on)."""
        return self.datasets_dir / f"{tokenizer}-{key}"

    @property
    def training_dir(self) -> Path:
        return self.root / "training"

    @property
    def checkpoints_dir(self) -> Path:
        """Lightning checkpoints, ``last.ckpt`` among them: one place across runs, so ``--ckpt_path last`` resumes."""
        return self.training_dir / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """The newest checkpoint of the last fit (Lightning's ``save_last``)."""
        return self.checkpoints_dir / "last.ckpt"

    @property
    def predictions(self) -> Path:
        return self.training_dir / "predictions.jsonl"

    @property
    def export_dir(self) -> Path:
        return self.training_dir / "hf_export"

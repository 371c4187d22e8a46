"""What the preparation pipeline is told: its stages, the training tokenizers they make, and the settings every
stage reads besides the artifact tree (the DataModule builds them from its arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ivr.analysis.select_settings import SelectSettings
from ivr.causal_lm import ModelShape
from ivr.corpus import CleaningOptions
from ivr.embeddings import AlignSettings
from ivr.paths import ArtifactPaths
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.remap import RemapSettings
from ivr.tokenizers.verify import VerifySettings

STAGES = ("init", "analyze", "distill-tokenizer", "select", "remap", "align")
TokenizerKind = Literal["original", "distilled", "remapped"]
# the last stage each training tokenizer needs
LAST_STAGE = {"original": "analyze", "distilled": "distill-tokenizer", "remapped": "align"}


@dataclass(frozen=True)
class OriginalTokenizer:
    """Where ``init`` takes the original BPE tokenizer from (``ivr.tokenizers.source``): ``local_dir`` (a
    directory, or a GGUF spec), else ``name``: a GGUF spec (``path.gguf``, ``distribution:path.gguf``) or a Hub
    name (its cache first; GPT-2's names fall back to the packaged vocabulary)."""

    name: str = "openai-community/gpt2"
    local_dir: str | None = None
    use_hub: bool = True
    force: bool = False


@dataclass(frozen=True)
class BaseModel:
    """The model whose embedding rows ``align`` reads: pretrained weights or a seeded from-scratch shape."""

    name_or_path: str | None = None
    from_config: ModelShape | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the stages read besides the artifact tree; the DataModule builds it from its arguments."""

    paths: ArtifactPaths
    heldout_fraction: float = 0.05
    original: OriginalTokenizer = OriginalTokenizer()
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    normalize_force: bool = False
    distill: DistillSettings = field(default_factory=DistillSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    select: SelectSettings = field(default_factory=SelectSettings)
    remap: RemapSettings = field(default_factory=RemapSettings)
    align: AlignSettings = field(default_factory=AlignSettings)
    extra_eval_paths: tuple[str, ...] = ()
    base_model: BaseModel = BaseModel()

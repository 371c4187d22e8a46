"""The packed datasets' cache: blocks of the training and held-out splits, keyed by everything they depend on
(the tokenizer file, the separator, the cleaned corpus, the block size, the split, the packing code and the
library versions), built once per key and packed again where a file of the folder changed since."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ivr.analysis.pretoken_table import split_id_batches
from ivr.cleaned_corpus import SplitTexts, corpus_content, read_manifest
from ivr.collector import collector_paused
from ivr.packing import (
    DATASET_FORMAT_VERSION, SPLIT_SOURCES, encoded_batches, packed_damage, remove_superseded_datasets,
    write_packed_splits,
)
from ivr.paths import ArtifactPaths
from ivr.pipeline_config import TokenizerKind
from ivr.staging import artifacts_lock, stage_code_fingerprint
from ivr.stamps import file_sha256, library_versions
from ivr.tokenizers.io import load_tokenizer, read_special_tokens

log = logging.getLogger(__name__)


def dataset_key(paths: ArtifactPaths, tokenizer: TokenizerKind, block_size: int, heldout_fraction: float) -> dict:
    """Everything the packed blocks depend on, the packing code included."""
    return {
        "version": DATASET_FORMAT_VERSION,
        "tokenizer": file_sha256(paths.tokenizer_file(tokenizer)),
        # from the tokenizer's config where tokenizer.json has no <|endoftext|>: eos, which two configs of one
        # tokenizer.json may name differently
        "separator": read_special_tokens(paths.tokenizer_dir(tokenizer)).separator_id,
        "corpus": corpus_content(paths.cleaned_corpora_dir),
        "block_size": block_size,
        "heldout_fraction": heldout_fraction,
        "code": stage_code_fingerprint(build_datasets),
        "libraries": library_versions(),
    }


def dataset_dir(paths: ArtifactPaths, tokenizer: TokenizerKind, block_size: int, heldout_fraction: float,
                key: dict | None = None) -> Path:
    """The packed datasets' cache location: a hash of ``dataset_key`` (``key`` where already read)."""
    key = json.dumps(key or dataset_key(paths, tokenizer, block_size, heldout_fraction), sort_keys=True)
    return paths.dataset_dir(tokenizer, hashlib.sha256(key.encode()).hexdigest()[:16])


def build_datasets(paths: ArtifactPaths, tokenizer: TokenizerKind, block_size: int, heldout_fraction: float) -> Path:
    """Tokenize and pack the train and held-out splits into ``block_size`` blocks (once per cache key)."""
    with artifacts_lock(paths):
        # keyed under the lock: another run may rebuild the tokenizer or the corpus it hashes until then
        key = dataset_key(paths, tokenizer, block_size, heldout_fraction)
        target = dataset_dir(paths, tokenizer, block_size, heldout_fraction, key)
        if target.is_dir():  # the directory only ever appears by an atomic rename of a finished build
            damage = packed_damage(target)
            if damage is None:
                return target
            log.warning("datasets: %s: %s; packing it again", target, damage)
        tok = load_tokenizer(paths.tokenizer_dir(tokenizer))
        manifest = read_manifest(paths.cleaned_corpora_dir)
        splits = {}
        for name, split in SPLIT_SOURCES.items():
            # the pre-tokens verification recorded, where this tokenizer cuts text as the distilled one does
            splits[name] = split_id_batches(paths.distilled_pretokens, split, tok, key["corpus"], heldout_fraction)
            if isinstance(splits[name], str):
                log.info("datasets: %s; encoding the %s split", splits[name], split)
                splits[name] = encoded_batches(tok, SplitTexts(paths.cleaned_corpora_dir, split, heldout_fraction))
        separator = key["separator"]
        # the file, beside its hash: a datasets folder shared by trees holds blocks of other trees' tokenizers
        tokenizer_file = str(paths.tokenizer_file(tokenizer).resolve())
        with collector_paused():
            write_packed_splits(tok, splits, block_size, target, separator, manifest["bytes"],
                                record={**key, "tokenizer_file": tokenizer_file})
        remove_superseded_datasets(paths.datasets_dir, tokenizer, tokenizer_file, key["tokenizer"])
    return target

"""Documents → fixed-size training blocks, and the bytes each block's predicted tokens stand for.

Documents are joined as GPT-2 was trained: each one followed by the end-of-text id, all of them one stream of
ids cut into blocks of ``block_size`` (the tail shorter than a block is dropped). A block predicts every token
but its first, so its byte count, the denominator of bits per byte, covers those tokens only (the end-of-text
id stands for no bytes).

A packed dataset is a ``datasets.DatasetDict`` saved to disk: the splits ``SPLIT_SOURCES`` names, each of the
columns ``IDS_COLUMN`` and ``BYTES_COLUMN``, beside ``DATASET_RECORD_FILE``. ``write_packed_splits`` writes it,
``read_packed_splits`` reads it back.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ivr.atomic import atomic_dir, read_json_object, scratch_prefix
from ivr.cleaned_corpus import batched
from ivr.tokenizers.byte_level import piece_to_bytes

if TYPE_CHECKING:
    from datasets import DatasetDict

log = logging.getLogger(__name__)
DATASET_FORMAT_VERSION = 2  # of the splits, columns and blocks: part of the datasets' cache key
TRAIN_SPLIT, VALIDATION_SPLIT = "train", "validation"
SPLIT_SOURCES = {TRAIN_SPLIT: "train", VALIDATION_SPLIT: "heldout"}  # each packed split's cleaned corpus split
IDS_COLUMN = "input_ids"  # a block's ids, block_size of them
BYTES_COLUMN = "n_bytes"  # the UTF-8 bytes of the tokens a block predicts (all but its first)
# beside a packed dataset's own files: what its blocks were made from (the cache key's parts) and how many
DATASET_RECORD_FILE = "ivr_dataset.json"
DATASET_FOLDER = re.compile(r"[a-z]+-[0-9a-f]{16}")  # <tokenizer>-<key>, as ArtifactPaths.dataset_dir names them


def token_byte_lengths(tok, separator_id: int) -> np.ndarray:
    """UTF-8 bytes each id of a byte-level tokenizer stands for, indexed by id (``int64``): a piece its bytes, an
    added token its text's (``<|im_start|>``; ``<｜end▁of▁sentence｜>`` is not byte-level), and the document
    separator none, whatever its text (``<|end_of_text|>``): blocks count the bytes of their documents only."""
    added = tok.get_added_tokens_decoder()
    out = np.array([len(added[i].content.encode("utf-8")) if i in added else len(piece_to_bytes(tok.id_to_token(i)))
                    for i in range(tok.get_vocab_size())], dtype=np.int64)
    out[separator_id] = 0
    return out


def leading_blocks(block_bytes: np.ndarray, max_bytes: int) -> int:
    """How many leading blocks cover ``max_bytes`` of text (the last one reaching it; all where they hold less).
    Blocks are consecutive windows of one stream of documents, so for any tokenizer this is the same text up to
    one block, where a count of blocks covers more text the more bytes a token stands for."""
    reached = np.flatnonzero(np.cumsum(block_bytes) >= max_bytes)
    return int(reached[0]) + 1 if reached.size else len(block_bytes)


def encoded_batches(tok, texts: Iterable[str], docs_per_batch: int = 256) -> Iterator[tuple[list[np.ndarray], int]]:
    """``texts`` encoded by ``tok`` (without special tokens) ``docs_per_batch`` at a time: per batch, one ``int64``
    id array per document and the documents' UTF-8 size. Only one batch of texts is held at a time."""
    for batch in batched(texts, docs_per_batch):
        encodings = tok.encode_batch(batch, add_special_tokens=False)
        yield [np.asarray(e.ids, dtype=np.int64) for e in encodings], sum(len(t.encode("utf-8")) for t in batch)


def pack_id_batches(
    batches: Iterable[tuple[list[np.ndarray], int]], block_size: int, eos_id: int, nbytes: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream documents' ids (batches as ``encoded_batches`` gives them) as packed blocks: per batch, the blocks
    it completes, ``(input_ids, n_bytes)`` with ``input_ids`` of shape ``(k, block_size)`` and ``n_bytes`` of
    shape ``(k,)`` (both ``int64``; ``k`` may be 0). Ids left over at the end of a batch start the next one's
    first block; what is left after the last document is dropped. ``nbytes``: the UTF-8 bytes of each id
    (``token_byte_lengths``); ``eos_id``: the end-of-text id that follows every document (the tokenizer's own,
    e.g. 50256 in GPT-2)."""
    buffer = np.empty(0, dtype=np.int64)
    eos = np.array([eos_id], dtype=np.int64)
    for docs, _ in batches:
        buffer = np.concatenate([buffer, *(x for d in docs for x in (d, eos))])
        n_full = len(buffer) // block_size
        blocks = buffer[: n_full * block_size].reshape(n_full, block_size)
        yield blocks, nbytes[blocks[:, 1:]].sum(axis=1)
        buffer = buffer[n_full * block_size :]


def pack_blocks(
    tok, texts: Iterable[str], block_size: int, eos_id: int, docs_per_batch: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``texts`` encoded by ``tok`` (a byte-level ``tokenizers.Tokenizer``, without special tokens) and packed
    (``pack_id_batches``), one batch of ``docs_per_batch`` documents at a time."""
    return pack_id_batches(encoded_batches(tok, texts, docs_per_batch), block_size, eos_id, token_byte_lengths(tok, eos_id))


def write_packed_splits(
    tok, splits: Mapping[str, Iterable[tuple[list[np.ndarray], int]]], block_size: int, target: Path, eos_id: int,
    total_bytes: int | None = None, record: Mapping | None = None,
) -> None:
    """Pack each split's documents, given as ``tok``'s ids (batches as ``encoded_batches`` gives them), and save
    them at ``target`` as a ``datasets.DatasetDict`` with one split per key (those of ``SPLIT_SOURCES``, for
    ``read_packed_splits``) and the columns ``IDS_COLUMN`` and ``BYTES_COLUMN``. ``target`` appears only once
    complete (an atomic rename); a split without one full block raises ``ValueError``.

    Blocks go to an Arrow file as they are made and are saved from it memory-mapped, so memory holds one batch
    of documents whatever the corpus's size. ``total_bytes`` (all splits' UTF-8 size) gives the progress bar its
    total, so it shows MB/s and the time left. ``record``: what the blocks were made from, written with each
    split's block count as ``DATASET_RECORD_FILE``."""
    from datasets import Dataset, DatasetDict
    from datasets.arrow_writer import ArrowWriter

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbytes = token_byte_lengths(tok, eos_id)
    scratch_dir = TemporaryDirectory(dir=target.parent, prefix=f"{scratch_prefix(target)}blocks-")
    with atomic_dir(target) as tmp, scratch_dir as scratch, \
            tqdm(total=total_bytes, desc="packing blocks", unit="B", unit_scale=True, mininterval=2.0, leave=False) as bar:
        datasets = {}
        for name, batches in splits.items():
            path = Path(scratch) / f"{name}.arrow"
            rows = 0
            with ArrowWriter(path=str(path)) as writer:
                for blocks, counts in pack_id_batches(_measured(batches, bar), block_size, eos_id, nbytes):
                    if len(blocks):
                        writer.write_batch({IDS_COLUMN: blocks, BYTES_COLUMN: counts})
                        rows += len(blocks)
                if rows:  # the writer takes its schema from the first batch
                    writer.finalize()
            if not rows:
                raise too_short_for_a_block(name, block_size)
            datasets[name] = Dataset.from_file(str(path))
        DatasetDict(datasets).save_to_disk(str(tmp))
        if record is not None:
            blocks = {name: len(data) for name, data in datasets.items()}
            # each file's size, so that a later run can tell a folder truncated or thinned since (packed_damage)
            files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / DATASET_RECORD_FILE).write_text(
                json.dumps({**record, "blocks": blocks, "files": files}, indent=1, sort_keys=True), encoding="utf-8")


def packed_damage(directory: Path) -> str | None:
    """What has changed in a packed dataset folder since ``write_packed_splits`` wrote it, by the sizes its record
    lists: a file missing or of another size (a copy cut short, a full disk); ``None`` where nothing has, or the
    record lists no sizes."""
    record = read_dataset_record(directory)
    files = record.get("files") if record is not None else None
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        path = Path(directory) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size:,} bytes, not the {size:,} it was written with"
    return None


def read_packed_splits(path: Path) -> DatasetDict:
    """The packed dataset at ``path``, memory-mapped: a ``ValueError`` naming the folder, and what to do, where
    it cannot be read or lacks a split or column of ``write_packed_splits``."""
    from datasets import DatasetDict, load_from_disk

    try:
        datasets = load_from_disk(str(path))
    except (OSError, ValueError) as err:  # pyarrow's errors for a damaged file are ValueError or OSError
        raise _damaged_dataset(path, err) from None
    if not isinstance(datasets, DatasetDict):
        raise _damaged_dataset(path, "one dataset, not a dict of splits")
    for split in SPLIT_SOURCES:
        if split not in datasets or not {IDS_COLUMN, BYTES_COLUMN} <= set(datasets[split].column_names):
            raise _damaged_dataset(path, f"no {split!r} split with the columns {IDS_COLUMN!r} and {BYTES_COLUMN!r}")
    return datasets


def _damaged_dataset(path: Path, why: object) -> ValueError:
    return ValueError(f"{path}: the packed dataset cannot be read ({why}); delete this folder and run again to pack "
                      "it anew")


def read_dataset_record(directory: Path) -> dict | None:
    """The record of a packed dataset folder; None where it has none or it is not a JSON object."""
    try:
        return read_json_object(Path(directory) / DATASET_RECORD_FILE)
    except (OSError, ValueError):
        return None


def remove_superseded_datasets(datasets_dir: Path, tokenizer: str, tokenizer_file: str,
                               tokenizer_sha256: str) -> list[Path]:
    """Delete the packed datasets of the ``tokenizer`` kind whose record names the same ``tokenizer_file`` with
    other contents (``tokenizer_sha256`` now): a tree holds one tokenizer file per kind, and blocks of an earlier
    one (hundreds of MB each at scale) could only serve again if it were rebuilt byte for byte. Folders without a
    record, of another tree's tokenizer file (a shared datasets folder) and linked folders are left alone."""
    removed = []
    for folder in sorted(Path(datasets_dir).glob(f"{tokenizer}-*")):
        record = read_dataset_record(folder)
        if (not DATASET_FOLDER.fullmatch(folder.name) or folder.is_symlink() or record is None
                or record.get("tokenizer_file") != tokenizer_file or record.get("tokenizer") == tokenizer_sha256):
            continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
        log.info("datasets: removed %s (%.1f MB), packed with an earlier %s tokenizer", folder, size / 1e6, tokenizer)
        removed.append(folder)
    return removed


def check_splits_may_fill(splits: Mapping[str, Iterable[str]], block_size: int,
                          batch: tuple[int, int] | None = None, scorers: int = 1) -> None:
    """Raise for the first split whose documents could not hold a block of ``block_size`` tokens with their
    separators (``too_short_for_a_block``), or, given ``batch`` (blocks per device, devices), for a training split
    that could not fill one batch on every device, or for a held-out split that could not give each of ``scorers``
    devices (those that validate or test) a block (validation repeats none); for any byte-level tokenizer, each
    token stands for at least one byte of text, so this is known before any stage encodes. Reads each split only
    as far as it takes."""
    for name, texts in splits.items():
        blocks = (batch[0] * batch[1] if batch is not None else 1) if name == TRAIN_SPLIT else scorers
        total = 0
        for text in texts:
            total += len(text.encode("utf-8")) + 1
            if total >= block_size * blocks:
                break
        else:
            if total < block_size:
                raise too_short_for_a_block(name, block_size)
            if name != TRAIN_SPLIT:
                raise ValueError(
                    f"the {name} split's {total:,} bytes of text and separators make at most {total // block_size} "
                    f"blocks of data.block_size={block_size} tokens (a token stands for at least one byte), fewer than "
                    f"the {scorers} devices, each of which validates blocks of its own. Raise data.heldout_fraction "
                    "or lower data.block_size")
            raise ValueError(
                f"the {name} split's {total:,} bytes of text and separators make at most {total // block_size} blocks "
                f"of data.block_size={block_size} tokens (a token stands for at least one byte), fewer than one batch "
                f"({batch[0]} per device × {batch[1]} devices): the fit would train nothing. Lower data.batch_size "
                "or data.block_size, or add text")


def too_short_for_a_block(split: str, block_size: int) -> ValueError:
    """The error for a split whose documents, each with its end-of-text id, make no whole block."""
    return ValueError(f"the {split} split has fewer than data.block_size={block_size} tokens: "
                      f"add text, lower data.block_size or change data.heldout_fraction")


def _measured(batches: Iterable[tuple[list[np.ndarray], int]], bar: tqdm) -> Iterator[tuple[list[np.ndarray], int]]:
    """``batches``, advancing ``bar`` by each one's UTF-8 size."""
    for batch in batches:
        bar.update(batch[1])
        yield batch

"""The corpus's distilled pre-tokens, document by document, recorded while verification encodes the training and
held-out splits: selection reads its counts from them, and the packed datasets of any tokenizer that cuts text as
the distilled one does (the remapped tokenizer) are built from them, instead of cutting or encoding every document
again. This module owns the table: it records it (``PretokenRecorder``, from each document's encoding) and reads it
back (``read_pretoken_counts``, ``split_id_batches``).

A directory of Parquet files and a manifest:

- ``pretokens.parquet``: ``pretoken`` (index), ``piece`` (byte-level text), in the order first seen;
- ``{split}_documents.parquet`` (``train``, ``heldout``): ``doc`` (index in the split), ``bytes`` (UTF-8 size),
  ``key`` (``crc32(text) % 1000``, the hash that puts a document in selection's validation part);
- ``{split}_sequences.parquet``: one row per document, ``pretokens``: its pre-tokens' indices in order;
- ``train_counts.parquet``: ``doc``, ``pretoken``, ``count``, one row per distinct pre-token of a training
  document, each document's rows in the order its pre-tokens first occur;
- ``manifest.json``: whether the table was recorded, what it belongs to (the distilled tokenizer's SHA-256, a
  fingerprint of how it cuts text into pre-tokens, the corpus's fingerprint and held-out fraction) and its sizes.

A document's pre-tokens are the groups of its tokens by ``Encoding.word_ids`` (the pre-token each token came
from); each group's ids are the model's segmentation of that pre-token, and their pieces spell it. Any tokenizer
with the same normalizer, pre-tokenizer and added tokens cuts the same pre-tokens, so its ids of a document are its
model's segmentations of them, in order. A table that would hold more than ``limit`` distinct pre-tokens, or a
document holding an added token that encoding matches in text, is not recorded (the manifest says why); selection
then counts itself, bounded (``ivr.analysis.spans.count_pretokens``), and the datasets are encoded.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from ivr.analysis.spans import MAX_SELECT_PRETOKENS, PretokenCounts
from ivr.atomic import read_json_object
from ivr.tokenizers.io import groups_are_pre_tokens, pretoken_bounds

VERSION = 2
SPLITS = ("train", "heldout")
# what a recorded table holds, empty splits included
TABLE_FILES = ("pretokens.parquet", "train_counts.parquet",
               *(f"{split}_{part}.parquet" for split in SPLITS for part in ("documents", "sequences")))
FLUSH_VALUES = 1 << 22


def cutting_fingerprint(tokenizer) -> str:
    """What decides a tokenizer's pre-tokens: its normalizer, pre-tokenizer and added tokens, and whether text that
    spells a special token is cut as text."""
    h = hashlib.sha256()
    for part in (tokenizer.normalizer, tokenizer.pre_tokenizer):  # each serialises itself alone, not the model
        h.update(b"none" if part is None else part.__getstate__())
    added = sorted((i, t.content, t.special, t.single_word, t.lstrip, t.rstrip, t.normalized)
                   for i, t in tokenizer.get_added_tokens_decoder().items())
    h.update(json.dumps([added, tokenizer.encode_special_tokens]).encode())
    return h.hexdigest()


class _Split:
    """One split's documents, sequences and (training split) counts, written as they come."""

    def __init__(self, directory: Path, name: str):
        self.directory, self.name = directory, name
        self.sizes, self.keys = array("q"), array("q")
        self.writers: dict[str, object] = {}
        self.rows = 0
        self._reset()

    def _reset(self) -> None:
        self.offsets, self.values = array("q", [0]), array("q")
        self.row_doc, self.row_pretoken, self.row_count = array("q"), array("q"), array("q")

    def add(self, sequence: list[int]) -> None:
        doc = len(self.sizes) - 1
        self.values.extend(sequence)
        self.offsets.append(len(self.values))
        if self.name == "train":
            for k, count in Counter(sequence).items():  # first occurrences in order
                self.row_doc.append(doc)
                self.row_pretoken.append(k)
                self.row_count.append(count)
        if len(self.values) >= FLUSH_VALUES:
            self.flush()

    def _write(self, name: str, table) -> None:
        import pyarrow.parquet as pq

        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.directory / f"{self.name}_{name}.parquet", table.schema)
        self.writers[name].write_table(table)

    def flush(self) -> None:
        import pyarrow as pa

        def column(values: array):
            return pa.array(np.frombuffer(values, dtype=np.int64).astype(np.int32))

        if len(self.offsets) > 1 or "sequences" not in self.writers:
            lists = pa.ListArray.from_arrays(column(self.offsets), column(self.values))
            self._write("sequences", pa.table({"pretokens": lists}))
        if self.name == "train" and (self.row_doc or "counts" not in self.writers):
            self.rows += len(self.row_doc)
            self._write("counts", pa.table({"doc": column(self.row_doc), "pretoken": column(self.row_pretoken),
                                            "count": column(self.row_count)}))
        self._reset()

    def close(self, complete: bool) -> None:
        if complete:
            self.flush()
            pl.DataFrame({"doc": np.arange(len(self.sizes), dtype=np.int32),
                          "bytes": np.frombuffer(self.sizes, dtype=np.int64),
                          "key": np.frombuffer(self.keys, dtype=np.int64).astype(np.int32)}).write_parquet(
                self.directory / f"{self.name}_documents.parquet")
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        if not complete:
            for path in self.directory.glob(f"{self.name}_*.parquet"):
                path.unlink()


class _Index(dict):
    """Pre-token keys to their indices, a new key getting the next index on first lookup."""

    def __missing__(self, key: bytes) -> int:
        index = self[key] = len(self)
        return index


class PretokenRecorder:
    """Records each document's distilled pre-tokens into the table directory ``directory`` (which must exist
    and be empty: the caller moves it into place once complete). Give ``adder(split)`` every document of the
    split in order, then call ``finish``. ``added_ids``: the ids of the added tokens the encoding matches in text
    (``ivr.tokenizers.io.added_token_ids``); a document holding one stops the recording."""

    def __init__(self, directory: Path, added_ids: Collection[int] = (), limit: int = MAX_SELECT_PRETOKENS):
        self.directory, self.limit = Path(directory), limit
        # ids of added tokens that the encoding matches in text (those not cut as text): no pre-token's segmentation
        self.added_ids = frozenset(added_ids)
        self.index = _Index()
        self.splits = {name: _Split(self.directory, name) for name in SPLITS}
        self.abandoned: str | None = None

    def adder(self, split: str) -> Callable[[str, object], None]:
        """What records one document of ``split``: called with its text and its distilled ``Encoding``."""
        return lambda text, encoding: self.add(split, text, encoding)

    def add(self, split: str, text: str, encoding) -> None:
        record = self.splits[split]
        raw = text.encode("utf-8")
        record.sizes.append(len(raw))
        record.keys.append(zlib.crc32(raw) % 1000)
        if self.abandoned:
            return
        ids, words = encoding.ids, encoding.word_ids
        if not groups_are_pre_tokens(ids, words, self.added_ids):
            self._abandon("a document holds an added token, which no pre-token's segmentation gives")
            return
        # a pre-token's key is its ids as int32 bytes: a bytes slice is made and hashed faster than a tuple
        raw_ids, bounds = np.asarray(ids, dtype=np.int32).tobytes(), (pretoken_bounds(words) * 4).tolist()
        sequence = list(map(self.index.__getitem__, [raw_ids[a:b] for a, b in zip(bounds, bounds[1:])]))
        record.add(sequence)
        if len(self.index) > self.limit:
            self._abandon(f"more than {self.limit} distinct pre-tokens (MAX_SELECT_PRETOKENS)")

    def _abandon(self, reason: str) -> None:
        self.abandoned = reason
        for record in self.splits.values():
            record.close(complete=False)
        self.index.clear()

    def finish(self, tokenizer, tokenizer_sha256: str, corpus_fingerprint: str, heldout_fraction: float) -> dict:
        """Write the tables' rest and the manifest, the pieces spelled by ``tokenizer`` (the one that encoded the
        documents); returns the manifest."""
        manifest = {"version": VERSION, "recorded": self.abandoned is None, "tokenizer_sha256": tokenizer_sha256,
                    "cutting": cutting_fingerprint(tokenizer), "corpus_fingerprint": corpus_fingerprint,
                    "heldout_fraction": heldout_fraction,
                    "documents": {name: len(r.sizes) for name, r in self.splits.items()}}
        if self.abandoned is None:
            for record in self.splits.values():
                record.close(complete=True)
            vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
            pl.DataFrame({"pretoken": np.arange(len(self.index), dtype=np.int32),
                          "piece": ["".join(vocab[i] for i in np.frombuffer(key, dtype=np.int32))
                                    for key in self.index]},
                         schema={"pretoken": pl.Int32, "piece": pl.String}).write_parquet(self.directory / "pretokens.parquet")
            manifest.update(pretokens=len(self.index), train_count_rows=self.splits["train"].rows)
        else:
            manifest["reason"] = self.abandoned
        (self.directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest


def _usable(directory: Path, expected: dict) -> dict | str:
    """The manifest, where the table was recorded and belongs to ``expected`` (manifest keys and values); else
    why not, as a sentence."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        return f"no pre-token table at {directory}"
    try:
        manifest = read_json_object(path)
    except OSError as error:
        return f"{path}: unreadable ({error})"
    except ValueError as error:
        return str(error)
    if manifest.get("version") != VERSION:
        return f"{path}: table version {manifest.get('version')}, not {VERSION}"
    if not manifest.get("recorded"):
        return f"{path}: not recorded ({manifest.get('reason')})"
    other = [k for k, v in expected.items() if manifest.get(k) != v]
    if other:
        return f"{path}: recorded for another {', '.join(other)}"
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in TABLE_FILES:  # a truncated file has no footer: its reader would fail
        table = Path(directory) / name
        if not table.is_file():
            return f"{table}: missing"
        try:
            pq.read_metadata(table)
        except (OSError, ValueError, pa.ArrowException) as error:
            return f"{table}: damaged ({error})"
    return manifest


def read_pretoken_counts(directory: Path, tokenizer_sha256: str, corpus_fingerprint: str, heldout_fraction: float,
                         cap: int | None, validation_fraction: float) -> tuple[PretokenCounts, PretokenCounts | None] | str:
    """Selection's counts of the training split from the table at ``directory``, as
    ``ivr.analysis.spans.count_pretokens`` would count them on the same documents (the same counts, pre-tokens in
    the same order); or why the table cannot be used (absent, not recorded, recorded for another tokenizer or
    corpus), as a sentence."""
    directory = Path(directory)
    manifest = _usable(directory, {"tokenizer_sha256": tokenizer_sha256, "corpus_fingerprint": corpus_fingerprint,
                                   "heldout_fraction": heldout_fraction})
    if isinstance(manifest, str):
        return manifest
    # the count rows grow with the corpus: a streaming query holds the distinct pre-tokens, not the rows
    rows = pl.scan_parquet(directory / "train_counts.parquet", row_index_name="row")
    docs = pl.read_parquet(directory / "train_documents.parquet")
    pieces = pl.read_parquet(directory / "pretokens.parquet")["piece"].to_list()
    everything = _side(rows, docs, pieces, cap)
    if validation_fraction <= 0 or everything.documents < 2:
        return everything, None
    held_docs = docs.filter(pl.col("key") < validation_fraction * 1000)
    if held_docs.height in (0, docs.height):  # a tiny corpus: the first document of the smallest key
        held_docs = docs.sort(["key", "doc"]).head(1)
    return everything, _side(rows.join(held_docs.lazy().select("doc"), on="doc", how="semi"), held_docs, pieces, cap)


def _side(rows: pl.LazyFrame, docs: pl.DataFrame, pieces: list[str], cap: int | None) -> PretokenCounts:
    """The counts of ``docs`` from their ``rows``, each pre-token placed where it first occurs among them (the
    order a running ``Counter`` over the documents gives)."""
    count = pl.col("count").cast(pl.Int64)  # a sum of 32-bit counts stays 32-bit
    aggregates = [pl.col("row").min().alias("first"), count.sum().alias("total")]
    if cap is not None:
        aggregates.append(count.clip(upper_bound=cap).sum().alias("capped"))
    totals = rows.group_by("pretoken").agg(aggregates).sort("first").collect(engine="streaming")
    keys = [pieces[k] for k in totals["pretoken"].to_list()]
    counts = PretokenCounts(cap, Counter(dict(zip(keys, totals["total"].to_list()))))
    if cap is not None:
        counts.capped = Counter(dict(zip(keys, totals["capped"].to_list())))
    counts.total_bytes, counts.documents = int(docs["bytes"].sum()), docs.height
    return counts


def split_id_batches(directory: Path, split: str, tokenizer, corpus_fingerprint: str, heldout_fraction: float,
                     docs_per_batch: int = 256) -> Iterator[tuple[list[np.ndarray], int]] | str:
    """``tokenizer``'s ids of each document of ``split``, from the table at ``directory``: batches of
    ``docs_per_batch`` documents, each batch as (one ``int64`` id array per document, the documents' UTF-8 size),
    as ``ivr.packing.encoded_batches`` gives them by encoding the texts; or why the table cannot be used (absent,
    not recorded, recorded for another corpus, or ``tokenizer`` cuts text otherwise), as a sentence."""
    directory = Path(directory)
    manifest = _usable(directory, {"cutting": cutting_fingerprint(tokenizer), "corpus_fingerprint": corpus_fingerprint,
                                   "heldout_fraction": heldout_fraction})
    if isinstance(manifest, str):
        return manifest
    return _id_batches(directory, split, tokenizer, docs_per_batch)


def _id_batches(directory: Path, split: str, tokenizer, docs_per_batch: int) -> Iterator[tuple[list[np.ndarray], int]]:
    import pyarrow.parquet as pq

    # each distinct pre-token's ids by this tokenizer's model, flat, with where each one starts
    model = tokenizer.model
    segs = [[t.id for t in model.tokenize(p)] for p in pl.read_parquet(directory / "pretokens.parquet")["piece"].to_list()]
    lengths = np.fromiter(map(len, segs), dtype=np.int64, count=len(segs))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.fromiter((i for s in segs for i in s), dtype=np.int64, count=int(lengths.sum()))
    sizes = pl.read_parquet(directory / f"{split}_documents.parquet")["bytes"].to_numpy()
    done = 0
    for batch in pq.ParquetFile(directory / f"{split}_sequences.parquet").iter_batches(docs_per_batch, columns=["pretokens"]):
        lists = batch.column(0)
        pretokens = lists.flatten().to_numpy().astype(np.int64)
        per_doc = np.diff(lists.offsets.to_numpy())
        n = lengths[pretokens]
        ends = np.concatenate([[0], np.cumsum(n)])  # where each pre-token's ids end in the batch's ids
        ids = flat[np.repeat(starts[pretokens] - ends[:-1], n) + np.arange(ends[-1])]
        docs = np.split(ids, ends[np.cumsum(per_doc)[:-1]])
        yield docs, int(sizes[done:done + len(docs)].sum())
        done += len(docs)

"""The training split's distilled pre-tokens per document, recorded while verification encodes the split, so
that selection reads its counts instead of cutting every document again. This module owns the table: it records
it (``PretokenRecorder``, from each document's encoding) and reads it back as selection's counts
(``read_pretoken_counts``).

A directory of three Parquet files and a manifest:

- ``pretokens.parquet``: ``pretoken`` (index), ``piece`` (byte-level text), in the order first seen;
- ``documents.parquet``: ``doc`` (index in the split), ``bytes`` (UTF-8 size), ``key`` (``crc32(text) % 1000``,
  the hash that puts a document in selection's validation part);
- ``counts.parquet``: ``doc``, ``pretoken``, ``count``, one row per distinct pre-token of a document, each
  document's rows in the order its pre-tokens first occur;
- ``manifest.json``: whether the table was recorded, the distilled tokenizer's SHA-256 and the corpus's
  fingerprint it belongs to, and its sizes.

The pre-tokens of a document are the groups of its tokens by ``Encoding.word_ids`` (the pre-token each token
came from); each group's ids are the model's segmentation of that pre-token, and their pieces spell it. A table
that would hold more than ``limit`` distinct pre-tokens is not recorded (the manifest says so) and selection
counts itself, bounded (``ivr.analysis.spans.count_pretokens``).
"""

from __future__ import annotations

import json
import zlib
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from ivr.analysis.spans import MAX_SELECT_PRETOKENS, PretokenCounts

VERSION = 1
ROWS_PER_GROUP = 1 << 20


class PretokenRecorder:
    """Records each document's distilled pre-token counts into the table directory ``directory`` (which must
    exist and be empty: the caller moves it into place once complete). Call ``add`` for every document of the
    split in order, then ``finish``."""

    def __init__(self, directory: Path, limit: int = MAX_SELECT_PRETOKENS):
        self.directory, self.limit = Path(directory), limit
        self.index: dict[tuple[int, ...], int] = {}
        self.sizes, self.keys = array("q"), array("q")
        self.row_doc, self.row_pretoken, self.row_count = array("q"), array("q"), array("q")
        self.rows = 0
        self.writer = None
        self.abandoned: str | None = None

    def add(self, text: str, encoding) -> None:
        """Count one document's pre-tokens from its distilled ``encoding`` (a ``tokenizers.Encoding``)."""
        raw = text.encode("utf-8")
        doc = len(self.sizes)
        self.sizes.append(len(raw))
        self.keys.append(zlib.crc32(raw) % 1000)
        ids = encoding.ids
        if self.abandoned or not ids:
            return
        words = encoding.word_ids
        if None in words:
            raise ValueError("a token without a pre-token (an added token matched as such): encode document text "
                             "with `encode_special_tokens` set (ivr.tokenizers.io.load_tokenizer)")
        cuts = (np.flatnonzero(np.diff(np.asarray(words, dtype=np.int64))) + 1).tolist()
        bounds = [0, *cuts, len(ids)]
        index = self.index
        for group, count in Counter(tuple(ids[a:b]) for a, b in zip(bounds, bounds[1:])).items():
            k = index.get(group)
            if k is None:
                k = index[group] = len(index)
            self.row_doc.append(doc)
            self.row_pretoken.append(k)
            self.row_count.append(count)
        if len(index) > self.limit:
            self.abandoned = (f"more than {self.limit} distinct pre-tokens (MAX_SELECT_PRETOKENS): selection counts "
                              f"them itself, bounded")
            self._close_rows()
            (self.directory / "counts.parquet").unlink(missing_ok=True)
            self.index.clear()
        elif len(self.row_doc) >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: pa.array(np.frombuffer(col, dtype=np.int64).astype(np.int32))
                          for name, col in (("doc", self.row_doc), ("pretoken", self.row_pretoken),
                                            ("count", self.row_count))})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.directory / "counts.parquet", table.schema)
        self.writer.write_table(table)
        self.rows += len(self.row_doc)
        self.row_doc, self.row_pretoken, self.row_count = array("q"), array("q"), array("q")

    def _close_rows(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self, tokenizer, tokenizer_sha256: str, corpus_fingerprint: str) -> dict:
        """Write the tables' rest and the manifest, the pieces spelled by ``tokenizer`` (the one that encoded the
        documents); returns the manifest."""
        manifest = {"version": VERSION, "tokenizer_sha256": tokenizer_sha256, "corpus_fingerprint": corpus_fingerprint,
                    "recorded": self.abandoned is None, "documents": len(self.sizes)}
        if self.abandoned is None:
            if self.row_doc or self.writer is None:
                self._flush()
            self._close_rows()
            vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
            pl.DataFrame({"pretoken": np.arange(len(self.index), dtype=np.int32),
                          "piece": ["".join(vocab[i] for i in group) for group in self.index]},
                         schema={"pretoken": pl.Int32, "piece": pl.String}).write_parquet(self.directory / "pretokens.parquet")
            pl.DataFrame({"doc": np.arange(len(self.sizes), dtype=np.int32),
                          "bytes": np.frombuffer(self.sizes, dtype=np.int64),
                          "key": np.frombuffer(self.keys, dtype=np.int64).astype(np.int32)}).write_parquet(
                self.directory / "documents.parquet")
            manifest.update(pretokens=len(self.index), rows=self.rows)
        else:
            manifest["reason"] = self.abandoned
        (self.directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest


def read_pretoken_counts(directory: Path, tokenizer_sha256: str, corpus_fingerprint: str, cap: int | None,
                         validation_fraction: float) -> tuple[PretokenCounts, PretokenCounts | None] | str:
    """Selection's counts from the table at ``directory``, as ``ivr.analysis.spans.count_pretokens`` would count
    them on the same documents (the same counts, pre-tokens in the same order); or why the table cannot be used
    (absent, not recorded, recorded for another tokenizer or corpus), as a sentence."""
    directory = Path(directory)
    path = directory / "manifest.json"
    if not path.is_file():
        return f"no pre-token table at {directory}"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"{path}: unreadable ({error})"
    if manifest.get("version") != VERSION:
        return f"{path}: table version {manifest.get('version')}, not {VERSION}"
    if not manifest.get("recorded"):
        return f"{path}: not recorded ({manifest.get('reason')})"
    if manifest.get("tokenizer_sha256") != tokenizer_sha256 or manifest.get("corpus_fingerprint") != corpus_fingerprint:
        return f"{path}: recorded for another distilled tokenizer or corpus"
    rows = pl.read_parquet(directory / "counts.parquet").with_row_index("row")
    docs = pl.read_parquet(directory / "documents.parquet")
    pieces = pl.read_parquet(directory / "pretokens.parquet")["piece"].to_list()
    everything = _side(rows, docs, pieces, cap)
    if validation_fraction <= 0 or everything.documents < 2:
        return everything, None
    held_docs = docs.filter(pl.col("key") < validation_fraction * 1000)
    if held_docs.height in (0, docs.height):  # a tiny corpus: the first document of the smallest key
        held_docs = docs.sort(["key", "doc"]).head(1)
    return everything, _side(rows.join(held_docs.select("doc"), on="doc", how="semi"), held_docs, pieces, cap)


def _side(rows: pl.DataFrame, docs: pl.DataFrame, pieces: list[str], cap: int | None) -> PretokenCounts:
    """The counts of ``docs`` from their ``rows``, each pre-token placed where it first occurs among them (the
    order a running ``Counter`` over the documents gives)."""
    aggregates = [pl.col("row").min().alias("first"), pl.col("count").sum().alias("total")]
    if cap is not None:
        aggregates.append(pl.col("count").clip(upper_bound=cap).sum().alias("capped"))
    totals = rows.group_by("pretoken").agg(aggregates).sort("first")
    keys = [pieces[k] for k in totals["pretoken"].to_list()]
    counts = PretokenCounts(cap, Counter(dict(zip(keys, totals["total"].to_list()))))
    if cap is not None:
        counts.capped = Counter(dict(zip(keys, totals["capped"].to_list())))
    counts.total_bytes, counts.documents = int(docs["bytes"].sum()), docs.height
    return counts

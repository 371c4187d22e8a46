"""How GPT-2's BPE tokenizes the domain: id sequences per document and per-id frequencies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import polars as pl
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.atomic import atomic_file
from ivr.corpus import Document
from ivr.tokenizers.byte_level import readable


def _batches(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def analyze_corpus(
    tokenizer: Tokenizer,
    documents: Iterable[Document],
    sequences_path: Path,
    frequency_path: Path,
    batch_size: int = 64,
) -> dict:
    """Encode every document once, streaming: ids go to ``sequences_path`` (one document per line)
    and per-id counts, document frequencies and shares to ``frequency_path``.

    Memory is bounded by one batch plus two vocabulary-sized count arrays.
    """
    vocab_size = tokenizer.get_vocab_size()
    counts = np.zeros(vocab_size, dtype=np.int64)
    doc_freq = np.zeros(vocab_size, dtype=np.int64)
    n_docs = n_bytes = 0
    with atomic_file(sequences_path) as tmp, open(tmp, "w", encoding="ascii") as out:
        for batch in tqdm(_batches(documents, batch_size), desc="analyze (original BPE)", unit="batch", leave=False):
            for enc in tokenizer.encode_batch([d.text for d in batch], add_special_tokens=False):
                ids = np.asarray(enc.ids, dtype=np.int64)
                out.write(" ".join(map(str, enc.ids)) + "\n")
                counts += np.bincount(ids, minlength=vocab_size)
                doc_freq[np.unique(ids)] += 1
            n_docs += len(batch)
            n_bytes += sum(len(d.text.encode("utf-8")) for d in batch)

    total = int(counts.sum())
    pieces = [tokenizer.id_to_token(i) for i in range(vocab_size)]
    frame = pl.DataFrame(
        {
            "token_id": np.arange(vocab_size, dtype=np.int64),
            "token": pieces,
            "text": [readable(p) for p in pieces],
            "count": counts,
            "doc_freq": doc_freq,
            "share": counts / max(total, 1),
        }
    )
    with atomic_file(frequency_path) as tmp:
        frame.write_parquet(tmp)
    return {"documents": n_docs, "bytes": n_bytes, "tokens": total, "distinct_ids": int((counts > 0).sum())}

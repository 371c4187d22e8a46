"""How GPT-2's BPE tokenizes the domain: id sequences per document and per-id frequencies."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.atomic import atomic_file
from ivr.corpus import Document, batched
from ivr.tokenizers.byte_level import readable


def analyze_corpus(
    tokenizer: Tokenizer,
    documents: Iterable[Document],
    sequences_path: Path,
    frequency_path: Path,
    batch_size: int = 64,
    total_bytes: int | None = None,
) -> dict:
    """Encode every document once, streaming: ids go to ``sequences_path`` (one document per line)
    and per-id counts, document frequencies and shares to ``frequency_path``.

    Memory is bounded by one batch plus two vocabulary-sized count arrays. ``total_bytes`` (the corpus's UTF-8
    size, from its manifest) gives the progress bar its total, so it shows MB/s and the time left.
    """
    vocab_size = tokenizer.get_vocab_size()
    counts = np.zeros(vocab_size, dtype=np.int64)
    doc_freq = np.zeros(vocab_size, dtype=np.int64)
    n_docs = n_bytes = 0
    with atomic_file(sequences_path) as tmp, open(tmp, "w", encoding="ascii") as out:
        bar = tqdm(total=total_bytes, desc="analyze (original BPE)", unit="B", unit_scale=True, mininterval=2.0, leave=False)
        for batch in batched(documents, batch_size):
            encodings = tokenizer.encode_batch([d.text for d in batch], add_special_tokens=False)
            out.writelines(" ".join(map(str, enc.ids)) + "\n" for enc in encodings)
            # one count per batch, not per document: a vocabulary-sized sum per short document dominates
            ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
            counts += np.bincount(np.concatenate([np.empty(0, np.int64), *ids]), minlength=vocab_size)
            doc_freq += np.bincount(np.concatenate([np.empty(0, np.int64), *map(np.unique, ids)]), minlength=vocab_size)
            n_docs += len(batch)
            size = sum(len(d.text.encode("utf-8")) for d in batch)
            n_bytes += size
            bar.update(size)
        bar.close()

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

"""How GPT-2's BPE tokenizes the domain: id sequences per document and per-id frequencies. This module owns
the id sequences file: it writes it (``analyze_corpus``) and reads it back (``SplitIdSequences``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.atomic import atomic_file
from ivr.cleaned_corpus import CorpusError, Document, batched, split_membership
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
    id_text = [str(i) for i in range(vocab_size)]  # written by lookup: converting each int costs more
    with atomic_file(sequences_path) as tmp, open(tmp, "w", encoding="ascii") as out:
        bar = tqdm(total=total_bytes, desc="analyze (original BPE)", unit="B", unit_scale=True, mininterval=2.0, leave=False)
        for batch in batched(documents, batch_size):
            encodings = tokenizer.encode_batch([d.text for d in batch], add_special_tokens=False)
            lists = [enc.ids for enc in encodings]  # each ``.ids`` builds a new list
            out.writelines(" ".join(map(id_text.__getitem__, doc)) + "\n" for doc in lists)
            # one count per batch, not per document: a vocabulary-sized sum per short document dominates
            ids = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=sum(map(len, lists)))
            counts += np.bincount(ids, minlength=vocab_size)
            # a document counts each id once: its (document, id) pairs made unique in one go
            docs = np.repeat(np.arange(len(lists), dtype=np.int64), [len(doc) for doc in lists])
            doc_freq += np.bincount(np.unique(docs * vocab_size + ids) % vocab_size, minlength=vocab_size)
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


@dataclass(frozen=True)
class SplitIdSequences:
    """The original BPE's ids of one split's documents, in the order of ``ivr.cleaned_corpus.SplitTexts``: the id
    sequences ``analyze_corpus`` wrote (one line per document of the whole corpus, in manifest order), read from
    disk on each pass. A file that does not fit the corpus is refused, naming the file and the line."""

    cleaned_dir: Path
    sequences_path: Path
    split: Literal["train", "heldout"] | None = None
    heldout_fraction: float = 0.05

    def __iter__(self) -> Iterator[list[int]]:
        path, again = self.sequences_path, "it is not this corpus's id sequences; run `ivr analyze` again"
        # a byte that is not ASCII is read as U+FFFD, which no id parses: the error names its line
        with open(path, encoding="ascii", errors="replace") as sequences:
            line_no = 0
            for line_no, wanted in enumerate(split_membership(self.cleaned_dir, self.split, self.heldout_fraction), 1):
                ids = sequences.readline()
                if not ids:
                    raise CorpusError(f"{path}:{line_no}: the file ends before the documents of {self.cleaned_dir} "
                                      f"do; {again}")
                if not wanted:  # only the split's lines are parsed: each pass reads the whole file
                    continue
                try:
                    parsed = list(map(int, ids.split()))
                except ValueError:
                    raise CorpusError(f"{path}:{line_no}: not a line of token ids; {again}") from None
                yield parsed
            if sequences.readline():
                raise CorpusError(f"{path}:{line_no + 1}: more lines than {self.cleaned_dir} has documents; {again}")

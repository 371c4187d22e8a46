"""How GPT-2's BPE tokenizes the domain: id sequences per document and per-id frequencies. This module owns
both files: it writes them (``analyze_corpus``) and reads back the ids (``SplitIdSequences``) and what each file
records of its inputs (``id_sequences_inputs``, ``frequency_inputs``).

The inputs (the tokenizer and the cleaned corpus, by hash, as the reports name theirs) head the id sequences file
as ``# key: value`` lines (each value in JSON) and are the table's Parquet key-value metadata under ``inputs`` (a
JSON object)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, takewhile
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.atomic import atomic_file
from ivr.cleaned_corpus import CorpusError, Document, batched, corpus_content, split_membership
from ivr.tokenizers.byte_level import readable

HEADER = "# "  # an input line of the id sequences file: "# key: <JSON value>", before the first line of ids
INPUTS_KEY = b"inputs"  # the table's key-value metadata: the inputs as a JSON object
# the inputs' key naming the cleaned corpus, "<dir> (content <hash>)" (``ivr.pipeline._inputs``): checked on reading
CORPUS_INPUT = "corpus"


def analyze_corpus(
    tokenizer: Tokenizer,
    documents: Iterable[Document],
    sequences_path: Path,
    frequency_path: Path,
    batch_size: int = 64,
    total_bytes: int | None = None,
    inputs: dict | None = None,
) -> dict:
    """Encode every document once, streaming: ids go to ``sequences_path`` (one document per line)
    and per-id counts, document frequencies and shares to ``frequency_path``. ``inputs`` (what the ids were made
    from, by hash: ``{"original tokenizer": ..., "corpus": ...}``) head the ids and are the table's metadata.

    Memory is bounded by one batch plus two vocabulary-sized count arrays. ``total_bytes`` (the corpus's UTF-8
    size, from its manifest) gives the progress bar its total, so it shows MB/s and the time left.
    """
    vocab_size = tokenizer.get_vocab_size()
    counts = np.zeros(vocab_size, dtype=np.int64)
    doc_freq = np.zeros(vocab_size, dtype=np.int64)
    n_docs = n_bytes = 0
    id_text = [str(i) for i in range(vocab_size)]  # written by lookup: converting each int costs more
    # UTF-8 for the inputs' paths; the ids are ASCII
    with atomic_file(sequences_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        # each value in JSON: a path may hold a line break, which would end its line early
        out.writelines(f"{HEADER}{key}: {json.dumps(value, ensure_ascii=False)}\n"
                       for key, value in (inputs or {}).items())
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
    # pyarrow writes key-value metadata in every version; polars only in recent ones
    table = frame.to_arrow().replace_schema_metadata({INPUTS_KEY: json.dumps(inputs)} if inputs else None)
    with atomic_file(frequency_path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return {"documents": n_docs, "bytes": n_bytes, "tokens": total, "distinct_ids": int((counts > 0).sum())}


def _input_line(line: str, where: str) -> tuple[str, object]:
    key, _, value = line[len(HEADER):].rstrip("\n").partition(": ")
    try:
        return key, json.loads(value)
    except ValueError:
        raise CorpusError(f"{where}: not an input line (# key: JSON value); run `ivr analyze` again") from None


def id_sequences_inputs(sequences_path: Path) -> dict:
    """What the id sequences file records of its inputs; ``{}`` for a file written without them."""
    with open(sequences_path, encoding="utf-8", errors="replace") as sequences:
        header = takewhile(lambda line: line.startswith(HEADER), sequences)
        return dict(_input_line(line, f"{sequences_path}:{n}") for n, line in enumerate(header, 1))


def frequency_inputs(frequency_path: Path) -> dict:
    """What the frequency table records of its inputs; ``{}`` for a table written without them."""
    recorded = (pq.read_schema(frequency_path).metadata or {}).get(INPUTS_KEY)
    return json.loads(recorded) if recorded else {}


@dataclass(frozen=True)
class SplitIdSequences:
    """The original BPE's ids of one split's documents, in the order of ``ivr.cleaned_corpus.SplitTexts``: the id
    sequences ``analyze_corpus`` wrote (one line per document of the whole corpus, in manifest order, after the
    input lines), read from disk on each pass. A file that does not fit the corpus (another corpus's by its input
    line, or by its number of lines) is refused, naming the file and the line."""

    cleaned_dir: Path
    sequences_path: Path
    split: Literal["train", "heldout"] | None = None
    heldout_fraction: float = 0.05

    def __iter__(self) -> Iterator[list[int]]:
        path, again = self.sequences_path, "it is not this corpus's id sequences; run `ivr analyze` again"
        # a byte that is not ASCII is read as U+FFFD, which no id parses: the error names its line
        with open(path, encoding="ascii", errors="replace") as sequences:
            first, line_no = sequences.readline(), 0
            while first.startswith(HEADER):  # the inputs (a file written before them has none)
                line_no += 1
                key, value = _input_line(first, f"{path}:{line_no}")
                content = corpus_content(self.cleaned_dir) if key == CORPUS_INPUT else None
                if content is not None and not str(value).endswith(f"(content {content})"):
                    raise CorpusError(f"{path}:{line_no}: made from another corpus ({value}), not {self.cleaned_dir} "
                                      f"(content {content}); {again}")
                first = sequences.readline()
            lines = chain([first], iter(sequences.readline, ""))
            for line_no, wanted in enumerate(split_membership(self.cleaned_dir, self.split, self.heldout_fraction),
                                             line_no + 1):
                ids = next(lines, "")
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
            if next(lines, ""):
                raise CorpusError(f"{path}:{line_no + 1}: more lines than {self.cleaned_dir} has documents; {again}")

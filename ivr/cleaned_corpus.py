"""The cleaned corpus format: its records and manifest written and read back, which split each document is in,
the documents and texts of a split, streamed from disk.

``ivr.corpus`` decides what text goes in and writes it through this module; everything downstream reads it
through this module. Each source file becomes ``cleaned_file_name(<source name>)``, one JSON record per
document with its id first (``encode_record``); ``MANIFEST_FILE`` is written last. A document's split is a
stable hash of its id, the same on every machine and in every process.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Literal, TypeVar

from ivr.atomic import read_json_object, write_json
from ivr.stamps import output_signature

T = TypeVar("T")
MANIFEST_FILE = "manifest.json"
"""Written last in the cleaned directory: its presence marks a complete build."""
MANIFEST_VERSION = 1
"""Of the record and manifest layout; the cleaning fingerprint holds it, so a new one cleans every corpus again."""
_MANIFEST_HEAD = re.compile(rb'\s*\{\s*"version":\s*\d+,\s*"fingerprint":')  # as write_manifest begins, damaged or not
RECORD_PREFIX = '{"id": '  # how encode_record begins every record: readers find the id without decoding the text


class CorpusError(ValueError):
    """A raw corpus file cannot be read as configured; the message names the file and place."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


def is_heldout(doc_id: str, heldout_fraction: float) -> bool:
    """Stable split by document id: the same document lands in the same split on every machine."""
    h = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < heldout_fraction


def cleaned_file_name(source_name: str) -> str:
    """The cleaned file of the source file named ``source_name`` (its path under the raw folder)."""
    return f"{source_name}.jsonl"


def document_id(source_name: str, place: int) -> str:
    """The id of the document at ``place`` (line, record index, 0 for a whole file) of a source file; ``#k``
    follows for the pieces of a document cut up."""
    return f"{source_name}:{place}"


def encode_record(doc: Document) -> bytes:
    """A document as its cleaned file holds it: one line of UTF-8 JSON, its id first (``RECORD_PREFIX``). The
    bytes must not change: the corpus's content hash, and so every stage's cache key, is a hash of them."""
    return (json.dumps({"id": doc.doc_id, "text": doc.text}, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(cleaned_dir: Path, fingerprint: str, **fields) -> dict:
    """Write the manifest that marks ``cleaned_dir`` complete (last, once every cleaned file is written): the
    version, ``fingerprint`` (of the raw files and cleaning settings) and ``fields``, ``files`` among them (one
    ``{"cleaned": name, ...}`` per cleaned file, in document order). Returns it."""
    manifest = {"version": MANIFEST_VERSION, "fingerprint": fingerprint, **fields}
    write_json(Path(cleaned_dir) / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(cleaned_dir: Path) -> dict:
    path = Path(cleaned_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no cleaned corpus at {cleaned_dir} (missing {path.name}): run `ivr init` first")
    try:
        manifest = read_json_object(path)
    except ValueError as err:
        raise CorpusError(f"{err}: damaged; run `ivr init` to clean the corpus again") from None
    files = manifest.get("files")
    if (not isinstance(files, list) or "fingerprint" not in manifest
            or not all(isinstance(f, dict) and isinstance(f.get("cleaned"), str) for f in files)):
        raise CorpusError(f"{path}: damaged (not a manifest ivr wrote: no 'files' list of cleaned files, or no 'fingerprint'); run "
                          "`ivr init` to clean the corpus again")
    return manifest


def cleaned_signature(cleaned_dir: Path) -> str:
    """A hash of the cleaned files' names, sizes and modification times: a file truncated, edited or added since
    the manifest was written makes ``clean_corpus`` clean again, and ``corpus_content`` refuse it."""
    entries = [e for e in output_signature(Path(cleaned_dir)) if e[0] != MANIFEST_FILE]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def corpus_content(cleaned_dir: str | Path) -> str:
    """What identifies the cleaned corpus for the stages, the dataset cache and checkpoints: a hash of its records
    (the raw files' fingerprint, which decides whether to clean again, for a manifest written without one). The
    files must be as the manifest recorded them: a stage that read files changed since would stamp its outputs
    with the manifest's hash, and a later cleaning (which gives that hash again) would trust them."""
    manifest = read_manifest(cleaned_dir)
    recorded = manifest.get("cleaned_signature")
    if recorded is not None and recorded != cleaned_signature(Path(cleaned_dir)):
        raise CorpusError(f"{cleaned_dir}: the cleaned files changed since {MANIFEST_FILE} was written (edited, cut "
                          "short or added by hand); run `ivr init` to clean the corpus again")
    return manifest.get("content") or manifest["fingerprint"]


def split_counts(cleaned_dir: str | Path, heldout_fraction: float) -> dict[str, int]:
    """How many documents fall in each split, and how many held-out ones have the exact text of a training
    document (``heldout_also_in_train``): the split goes by id, so copies of one text may be split apart."""
    counts = {"train": 0, "heldout": 0}
    train_texts, heldout_texts = set(), []
    for path, lineno, line in _cleaned_lines(cleaned_dir):
        try:
            doc_id, rest = _record_id_and_rest(line)
        except (ValueError, KeyError, TypeError) as err:
            raise _damaged(path, lineno, err) from None
        # the record's text as encode_record wrote it (every text the same way), not decoded: a cheap key
        text_key = hashlib.blake2b(rest.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if is_heldout(doc_id, heldout_fraction):
            counts["heldout"] += 1
            heldout_texts.append(text_key)
        else:
            counts["train"] += 1
            train_texts.add(text_key)
    return {**counts, "heldout_also_in_train": sum(key in train_texts for key in heldout_texts)}


def check_splits(cleaned_dir: str | Path, heldout_fraction: float, max_document_chars: int) -> dict[str, int]:
    """Fail now, not after every stage, when a split would be empty."""
    counts = split_counts(cleaned_dir, heldout_fraction)
    for split in ("train", "heldout"):
        if counts[split] == 0:
            raise CorpusError(
                f"the cleaned corpus at {cleaned_dir} has {counts['train'] + counts['heldout']} documents and none falls "
                f"in the {split} split (data.heldout_fraction={heldout_fraction}): add documents, change "
                f"data.heldout_fraction, or lower data.max_document_chars ({max_document_chars}) so that large documents "
                "are cut into more pieces"
            )
    return counts


def iter_documents(
    cleaned_dir: str | Path,
    split: Literal["train", "heldout"] | None = None,
    heldout_fraction: float = 0.05,
) -> Iterator[Document]:
    """Stream cleaned documents in manifest order, optionally only one split."""
    for path, lineno, line in _cleaned_lines(cleaned_dir):
        try:
            record = json.loads(line)
            doc_id, text = record["id"], record["text"]
        except (ValueError, KeyError, TypeError) as err:
            raise _damaged(path, lineno, err) from None
        if _in_split(doc_id, split, heldout_fraction):
            yield Document(doc_id, text)


def split_membership(
    cleaned_dir: str | Path,
    split: Literal["train", "heldout"] | None = None,
    heldout_fraction: float = 0.05,
) -> Iterator[bool]:
    """For every document of the corpus, in manifest order, whether it is in ``split`` (all are for None),
    without decoding the texts: what lines of a per-document file (analyze's ids) belong to one split."""
    for path, lineno, line in _cleaned_lines(cleaned_dir):
        try:
            doc_id = _record_id(line)
        except (ValueError, KeyError, TypeError) as err:
            raise _damaged(path, lineno, err) from None
        yield _in_split(doc_id, split, heldout_fraction)


def _cleaned_lines(cleaned_dir: str | Path) -> Iterator[tuple[Path, int, str]]:
    """The cleaned records, one JSON line per document, in manifest order, each with its file and line number."""
    cleaned_dir = Path(cleaned_dir)
    for entry in read_manifest(cleaned_dir)["files"]:
        path = cleaned_dir / entry["cleaned"]
        try:
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    yield path, lineno, line
        except (OSError, UnicodeDecodeError) as err:
            raise _damaged(path, None, err) from None


def _damaged(path: Path, lineno: int | None, err: Exception) -> CorpusError:
    """A cleaned file changed or lost since cleaning wrote it: ``ivr init`` checks them, a stage command does not."""
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    return CorpusError(f"{where}: damaged cleaned corpus ({err}); clean it again with `ivr init --normalize-force`")


def _in_split(doc_id: str, split: Literal["train", "heldout"] | None, heldout_fraction: float) -> bool:
    return split is None or is_heldout(doc_id, heldout_fraction) == (split == "heldout")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), consumed lazily: one batch in memory at a time."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@dataclass(frozen=True)
class SplitTexts:
    """The texts of one split of a cleaned corpus, read from disk on each pass: iterate it as often as needed
    without holding the corpus in memory (a consumer that needs a list makes one)."""

    cleaned_dir: Path
    split: Literal["train", "heldout"] | None = None
    heldout_fraction: float = 0.05

    def __iter__(self) -> Iterator[str]:
        return (d.text for d in iter_documents(self.cleaned_dir, self.split, self.heldout_fraction))


_DECODER = json.JSONDecoder()


def _record_id(line: str) -> str:
    """A cleaned record's document id without decoding its text: ``encode_record`` writes the id first."""
    return _record_id_and_rest(line)[0]


def _record_id_and_rest(line: str) -> tuple[str, str]:
    """A cleaned record's id and the rest of its line (its text as written), without decoding the text."""
    if line.startswith(RECORD_PREFIX):
        doc_id, end = _DECODER.raw_decode(line, len(RECORD_PREFIX))
        return doc_id, line[end:].rstrip("\n")
    record = json.loads(line)  # a record written otherwise: the rest as encode_record would write it
    written = encode_record(Document("", record["text"])).decode("utf-8")
    return record["id"], written[len(RECORD_PREFIX + '""'):].rstrip("\n")


def looks_like_cleaned_corpus(folder: Path) -> bool:
    """Whether ``folder`` holds a cleaned corpus, complete, interrupted or damaged: a manifest that begins as
    ``write_manifest`` begins one, or, without one, only cleaned files, each starting with a record of its
    source. A user's folder, even of JSONL files, is none."""
    folder = Path(folder)
    manifest = folder / MANIFEST_FILE
    if manifest.is_file():
        with open(manifest, "rb") as f:
            if _MANIFEST_HEAD.match(f.read(256)):
                return True
    return _holds_only_cleaned_records(folder)


def _holds_only_cleaned_records(folder: Path) -> bool:
    """Whether ``folder`` holds what cleaning writes there and nothing else: its manifest (in any state) and at
    least one cleaned file whose first record's id starts with its source's name."""
    if not folder.is_dir():
        return False
    found = False
    for path in folder.rglob("*"):
        if path.is_dir() or path == folder / MANIFEST_FILE:
            continue
        name = path.relative_to(folder).as_posix()
        source_name = name.removesuffix(cleaned_file_name(""))
        # up to the first record's place in its source: ids begin with the source's name
        id_head = json.dumps(document_id(source_name, 0).removesuffix("0"), ensure_ascii=False)[:-1]
        expected = (RECORD_PREFIX + id_head).encode("utf-8")
        with open(path, "rb") as f:
            if not (cleaned_file_name(source_name) == name and f.read(len(expected)) == expected):
                return False
        found = True
    return found

"""Raw corpus files → cleaned UTF-8 documents, with errors that name the file and place.

Raw sources, found recursively under the raw directory:

* ``*.txt``: the whole file is one document.
* ``*.jsonl``: one JSON record per line; the document is the record's ``text_key`` field.
* ``*.json``: a list of records (or one record); each record's ``text_key`` field is a document.

Cleaning decodes with the configured encoding, drops a byte-order mark and turns ``\\r\\n``/``\\r``
into ``\\n``; nothing else is touched, since GPT-2 was trained on raw text. Text that looks binary is
refused with the file named; a document over ``max_document_chars`` is cut at paragraph breaks into
documents of its own (``<id>#k``), so that a corpus of a few large files still splits into held-out and
training documents. Each source file becomes
``<cleaned>/<relative path>.jsonl`` with one ``{"id", "text"}`` record per document, so document
boundaries survive exactly; when the training data are packed, documents are joined with
``<|endoftext|>`` as GPT-2 was. ``manifest.json`` is written last and marks a complete build.
``ivr.cleaned_corpus`` owns that format: this module decides what text goes in and writes it through there.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from tqdm.auto import tqdm

from ivr.atomic import atomic_dir
from ivr.builtin_corpora import BUILTIN_CORPORA
from ivr.cleaned_corpus import (MANIFEST_FILE, MANIFEST_VERSION, CorpusError, Document, cleaned_file_name,
                                cleaned_signature, document_id, encode_record, looks_like_cleaned_corpus, read_manifest,
                                write_manifest)
from ivr.markdown_text import counted
from ivr.raw_records import LONE_SURROGATE, TOO_DEEP, check_text, documents, invalid_json, json_object, record_text
from ivr.raw_text import BOMS, decode, encoding_conflict, is_wide, jsonl_lines, read_bytes, unreadable
from ivr.stamps import code_fingerprint

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".jsonl", ".json")


@dataclass(frozen=True)
class CleaningOptions:
    text_key: str = "text"
    encoding: str = "utf-8"
    on_bad_record: Literal["raise", "skip"] = "raise"
    builtin_corpus: str | None = None
    builtin_corpus_max_mb: float = 8.0
    max_document_chars: int = 250_000

    def __post_init__(self) -> None:
        try:
            "\n".encode(self.encoding)  # a text encoding: codecs.lookup also knows "rot13" and "zlib"
        except LookupError:
            raise CorpusError(f"data.encoding: unknown encoding {self.encoding!r}") from None


class Source(NamedTuple):
    """A raw file to clean: its path, its name in the cleaned corpus (document ids start with it), and whether it
    is the built-in corpus's (always UTF-8: ``data.encoding`` is the user's files' encoding)."""

    path: Path
    rel: str
    builtin: bool = False


class _Skipper:
    """Applies ``on_bad_record``: re-raise, or count and go on."""

    def __init__(self, policy: str):
        self.policy = policy
        self.skipped: list[str] = []

    def __call__(self, err: CorpusError) -> None:
        if self.policy == "raise":
            raise CorpusError(f"{err} (--data.on_bad_record skip skips bad records and lists them in the "
                              "manifest)") from None
        # a lone surrogate in a record's field names cannot be written to the manifest or a UTF-8 terminal
        message = str(err).encode("utf-8", "backslashreplace").decode("utf-8")
        self.skipped.append(message)
        log.warning("skipping bad record: %s", message)


def read_source(source: Source, options: CleaningOptions, skip: _Skipper) -> Iterator[Document]:
    """Yield the cleaned documents of one raw file."""
    path, rel = source.path, source.rel
    encoding = "utf-8" if source.builtin else options.encoding
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise unreadable(path, err) from None
    if conflict := encoding_conflict(head, path, encoding):
        skip(conflict)
        return
    if suffix not in (".jsonl", ".json"):  # .txt, and the built-in corpus's .py files: one document
        data = read_bytes(path)
        try:
            try:
                text = decode(data, path, encoding)
            except CorpusError:
                # binary: say so rather than blame the encoding (or, in UTF-16 or UTF-32, whose NUL bytes are text,
                # damage); judged by the characters the file's own encoding gives
                if is_wide(encoding):
                    check_text(data.decode(encoding, errors="replace"), str(path))
                elif b"\0" in data and not any(data.startswith(bom) for bom, _ in BOMS):
                    check_text(data.decode("latin-1"), str(path))
                raise
            yield from documents(text, document_id(rel, 0), str(path), options.max_document_chars)
        except CorpusError as err:
            skip(err)
        return
    if suffix == ".jsonl":
        for lineno, line in jsonl_lines(path, encoding):
            try:
                if isinstance(line, CorpusError):
                    raise line
                try:
                    record = json.loads(line, object_pairs_hook=json_object)
                except json.JSONDecodeError as err:
                    raise invalid_json(path, lineno, err) from None
                except RecursionError:
                    raise CorpusError(f"{path}:{lineno}: {TOO_DEEP}") from None
                except ValueError as err:  # an integer of more digits than Python converts
                    raise CorpusError(f"{path}:{lineno}: invalid JSON ({err})") from None
                where = f"{path}:{lineno}"
                yield from documents(record_text(record, options.text_key, where), document_id(rel, lineno), where,
                                     options.max_document_chars)
            except CorpusError as err:
                skip(err)
        return
    # .json: a whole-file document; a bad file cannot be partly trusted, but bad records can be skipped
    data = read_bytes(path)
    try:
        text = decode(data, path, encoding).removeprefix("\ufeff")
        if not text.strip():  # an empty file holds no records, as an empty .jsonl or .txt file
            return
        payload = json.loads(text, object_pairs_hook=json_object)
    except json.JSONDecodeError as err:
        skip(invalid_json(path, None, err))
        return
    except RecursionError:
        skip(CorpusError(f"{path}: {TOO_DEEP}"))
        return
    except CorpusError as err:
        skip(err)
        return
    except ValueError as err:  # an integer of more digits than Python converts
        skip(CorpusError(f"{path}: invalid JSON ({err})"))
        return
    records = payload if isinstance(payload, list) else [payload]
    for index, record in enumerate(records):
        where = f"{path} record {index + 1}"  # counted from 1, as lines are; the id keeps its index
        try:
            yield from documents(record_text(record, options.text_key, where), document_id(rel, index), where,
                                 options.max_document_chars)
        except CorpusError as err:
            skip(err)


def _walk(raw_dir: Path, onerror) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` following links. Python 3.11's recurses once per folder level: a tree nested deeper than the
    interpreter's recursion limit is named, not a traceback."""
    try:
        yield from os.walk(raw_dir, onerror=onerror, followlinks=True)
    except RecursionError:
        raise CorpusError(f"raw corpus folder {raw_dir}: its folders nest too deep to be read (about "
                          f"{sys.getrecursionlimit()} levels); move the text into fewer levels") from None


def _check_cleaned_names(sources: list[Source]) -> None:
    """Two raw names whose cleaned files would collide: the file ``x.txt`` (cleaned as ``x.txt.jsonl``) and a
    folder ``x.txt.jsonl/`` of text files, whose cleaned files go inside a folder of that name."""
    owner = {cleaned_file_name(s.rel): s.path for s in sources}
    for s in sources:
        for parent in PurePosixPath(cleaned_file_name(s.rel)).parents:
            if str(parent) in owner:
                raise CorpusError(f"raw corpus files {owner[str(parent)]} and {s.path}: the first one's cleaned file, "
                                  f"{parent}, would be the folder of the second one's; rename one of them")


def _raw_files(raw_dir: Path, cleaned_dir: Path | None = None) -> tuple[list[Path], Counter]:
    """The raw folder's text files in sorted order: linked folders and files followed (each real one once), hidden
    files and folders (``.ipynb_checkpoints``, ``.git``) and the cleaned folder left out, suffixes in any case; and
    how many other files it holds, by suffix (``.md``, ``.py``), which are not read."""
    found, seen = {}, {os.path.realpath(cleaned_dir)} if cleaned_dir is not None else set()
    left_out: Counter = Counter()

    def unreadable(err: OSError) -> None:  # os.walk skips a folder it cannot list unless told
        raise CorpusError(f"raw corpus folder {err.filename}: cannot be read ({err.strerror}); its files would be "
                          "left out: fix its permissions or move it out of data.raw_corpora_dir")

    for root, dirs, files in _walk(raw_dir, unreadable):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree, or two links to one folder
            dirs[:] = []
            continue
        seen.add(real)
        # real folders before links to them, by name: which name a linked folder's files get must not depend on
        # the order the file system lists them in (it decides their document ids, and so the split)
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")),
                         key=lambda d: (os.path.islink(os.path.join(root, d)), d))
        for f in files:
            path = Path(root) / f
            if f.startswith("."):
                continue
            # os.walk lists a link whose target is gone among the files, and cannot tell a folder's (whose files
            # would be lost: `wiki.en`, `shard2`) from a file's
            if path.is_symlink() and not path.exists() and os.path.realpath(path) not in seen:  # not the cleaned one
                if _link_loop(path):  # its target may well exist: it is a link back to this one
                    raise CorpusError(f"raw corpus file or folder {path}: a link to {os.readlink(path)} in a loop of "
                                      "links that never reaches a file or folder: point it at the real one or remove "
                                      "the link")
                raise CorpusError(f"raw corpus file or folder {path}: a link to {os.readlink(path)}, which does not "
                                  "exist (a disk not mounted, a large file not fetched yet?): bring it back or remove "
                                  "the link")
            if Path(f).suffix.lower() not in SUFFIXES:
                left_out[Path(f).suffix.lower() or "no suffix"] += path.is_file()
                continue
            if path.is_file():
                link = path.is_symlink()
                found.setdefault(os.path.realpath(path) if link else os.path.join(real, f), []).append((link, path))
    # of one real file's names, as of a folder's: a real name before links, then by name, whatever the listing order
    paths = sorted(min(names)[1] for names in found.values())
    for path in paths:
        if LONE_SURROGATE.search(str(path)):  # on Linux, the bytes of a non-UTF-8 name come back as lone surrogates
            raise CorpusError(f"raw corpus file {ascii(str(path))}: its name is not valid UTF-8 and cannot be written "
                              "in the cleaned corpus; rename it (or the folder holding it) to a UTF-8 name")
    return paths, +left_out


def _link_loop(path: Path) -> bool:
    """Whether following the link ``path`` goes round in a loop of links."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def find_sources(raw_dir: Path, options: CleaningOptions, default_raw_dir: bool = False,
                 cleaned_dir: Path | None = None, quiet: bool = False) -> list[Source]:
    """Raw files to clean, never from ``cleaned_dir``; the built-in corpus joins them when configured.

    A raw folder that gives no files beside the built-in corpus (missing, a file, or without .txt, .jsonl or .json
    files) is no error (the demo configs use the built-in corpus alone); it is a warning where the folder was named
    (a typo, a file given for a folder), an info line where it is the layout's default (``default_raw_dir``)."""
    sources = []
    if raw_dir.is_dir():
        paths, left_out = _raw_files(raw_dir, cleaned_dir)
        sources = [Source(p, p.relative_to(raw_dir).as_posix()) for p in paths]
        # a folder of Markdown or code would otherwise vanish from the corpus unseen (one that gives no files at
        # all is named below)
        if left_out and sources and not quiet:
            most = sorted(left_out.items(), key=lambda kind: (-kind[1], kind[0]))[:8]
            kinds = ", ".join(f"{suffix}: {n}" for suffix, n in most)
            log.warning("raw corpus directory %s: %s not read, only .txt, .jsonl and .json files are (%s); rename "
                        "text files to .txt to take them in", raw_dir, counted(sum(left_out.values()), "file"), kinds)
    if not sources and options.builtin_corpus is not None and not quiet:
        (log.info if default_raw_dir else log.warning)(
            "raw corpus directory %s (data.raw_corpora_dir) %s; using data.builtin_corpus %s only",
            raw_dir, _no_files(raw_dir), options.builtin_corpus)
    if options.builtin_corpus is not None:
        if not options.builtin_corpus_max_mb > 0:
            raise CorpusError(f"data.builtin_corpus_max_mb must be positive, got {options.builtin_corpus_max_mb}")
        if options.builtin_corpus not in BUILTIN_CORPORA:
            raise CorpusError(
                f"unknown built-in corpus {options.builtin_corpus!r}; choose one of {tuple(BUILTIN_CORPORA)}"
            )
        sources += [Source(path, rel, builtin=True)
                    for path, rel in BUILTIN_CORPORA[options.builtin_corpus](options.builtin_corpus_max_mb)]
    if not sources:
        raise CorpusError(
            f"raw corpus directory {raw_dir} {_no_files(raw_dir)}: put your domain text there as .txt files (one document "
            f"each), .jsonl (one JSON object per line with a 'text' field) or .json (a list of such objects), "
            f"or set data.builtin_corpus: python_stdlib to use the Python standard library as an offline corpus"
        )
    _check_cleaned_names(sources)
    return sources


def _no_files(raw_dir: Path) -> str:
    """Why ``raw_dir`` gives no raw files."""
    return ("does not exist" if not raw_dir.exists() else "is a file, not a directory" if not raw_dir.is_dir()
            else "has no .txt, .jsonl or .json files")


def _sources_fingerprint(sources: list[Source], options: CleaningOptions) -> str:
    # the cleaning code too: a cleaning fix must not keep the text an older one wrote
    # the codec's own name: `UTF-8`, `utf8` and `u8` clean alike
    h = hashlib.sha256(json.dumps([MANIFEST_VERSION, code_fingerprint(["ivr.corpus"]), options.text_key,
                                   codecs.lookup(options.encoding).name, options.max_document_chars]).encode())
    for path, rel, _ in sources:
        st = path.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _builtin_cap(options: CleaningOptions) -> float | None:
    """The cap the manifest records beside the built-in corpus (none without one), the cap it was drawn under."""
    return options.builtin_corpus_max_mb if options.builtin_corpus is not None else None


def _cleaned_with(manifest: dict, fingerprint: str, options: CleaningOptions) -> bool:
    """Whether a manifest records a cleaning of these sources with these options. The built-in corpus's cap counts
    even where it draws the same files (the same fingerprint), so that the manifest records the cap in force."""
    return (manifest.get("fingerprint") == fingerprint and manifest.get("on_bad_record") == options.on_bad_record
            and manifest.get("builtin_corpus_max_mb") == _builtin_cap(options))


def cleaned_from_current_sources(raw_dir: Path, cleaned_dir: Path, options: CleaningOptions) -> bool:
    """Whether the cleaned corpus was cleaned from the raw files as they are now, with these options (a stage
    command run alone reads the cleaned copy; only ``ivr init`` cleans again). True where there is nothing to
    compare: no cleaned corpus, or no raw files to find."""
    try:
        manifest = read_manifest(cleaned_dir)
        sources = find_sources(Path(raw_dir), options, cleaned_dir=Path(cleaned_dir), quiet=True)
    except (OSError, CorpusError):
        return True
    return _cleaned_with(manifest, _sources_fingerprint(sources, options), options)


def clean_corpus(raw_dir: Path, cleaned_dir: Path, options: CleaningOptions, force: bool = False,
                 default_raw_dir: bool = False) -> dict:
    """Clean every raw source into ``cleaned_dir``; reuse a complete earlier build unless ``force``.

    Returns the manifest (files, documents, bytes, skipped records, the input fingerprint).
    """
    _check_cleaned_dir(Path(raw_dir), Path(cleaned_dir))
    sources = find_sources(Path(raw_dir), options, default_raw_dir, Path(cleaned_dir))
    fingerprint = _sources_fingerprint(sources, options)
    manifest_path = Path(cleaned_dir) / MANIFEST_FILE
    if manifest_path.is_file() and not force:
        try:
            manifest = read_manifest(cleaned_dir)
        except CorpusError as err:  # a damaged manifest marks nothing complete: clean again
            log.warning("%s; cleaning again", err)
        else:
            if not _cleaned_with(manifest, fingerprint, options):
                log.info("raw corpus or cleaning settings changed since %s was written; cleaning again", manifest_path)
            elif manifest.get("cleaned_signature") != cleaned_signature(Path(cleaned_dir)):
                log.warning("the cleaned files in %s changed since they were written; cleaning again", cleaned_dir)
            else:
                return manifest

    skip = _Skipper(options.on_bad_record)
    files, n_docs, n_bytes = [], 0, 0
    content = hashlib.sha256()  # what the stages read: the records in order, whatever the raw files' dates
    with atomic_dir(cleaned_dir) as tmp:
        for source in tqdm(sources, desc="cleaning corpus", unit="file", leave=False):
            path, rel = source.path, source.rel
            out = tmp / cleaned_file_name(rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            docs = bytes_ = 0
            with _cleaned_file(out, path) as f:
                for doc in read_source(source, options, skip):
                    record = encode_record(doc)
                    f.write(record)
                    content.update(record)
                    docs += 1
                    bytes_ += len(doc.text.encode("utf-8"))
            if docs == 0:
                out.unlink()
                continue
            files.append({"source": str(path), "cleaned": cleaned_file_name(rel), "documents": docs, "bytes": bytes_})
            n_docs, n_bytes = n_docs + docs, n_bytes + bytes_
        if n_docs == 0:
            raise CorpusError(f"no non-empty documents in {raw_dir} (after skipping {len(skip.skipped)} bad records)")
        manifest = write_manifest(
            tmp, fingerprint,
            # the stages' key: cleaning again text that did not change (a raw file touched) rebuilds nothing
            content=content.hexdigest(),
            raw_dir=str(raw_dir),
            builtin_corpus=options.builtin_corpus,
            builtin_corpus_max_mb=_builtin_cap(options),
            text_key=options.text_key,
            encoding=options.encoding,
            on_bad_record=options.on_bad_record,
            documents=n_docs,
            bytes=n_bytes,
            skipped_records=len(skip.skipped),
            skipped_examples=skip.skipped[:20],
            document_boundaries="one JSON record per document; packed for training with <|endoftext|> between",
            files=files,
            cleaned_signature=cleaned_signature(tmp),
        )
    if skip.skipped:
        print(f"ivr: skipped {len(skip.skipped)} bad records (data.on_bad_record=skip); first: {skip.skipped[0]}")
    return manifest


def _cleaned_file(out: Path, raw: Path):
    """``out`` open for writing; a raw name that the added ``.jsonl`` makes too long is named with what to do."""
    try:
        return open(out, "wb")
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
        raise CorpusError(f"raw corpus file {raw}: its name is too long for its cleaned copy ({out.name}, "
                          f"{len(out.name.encode())} bytes, passes the file system's limit); rename it shorter") from None


def _check_cleaned_dir(raw_dir: Path, cleaned_dir: Path) -> None:
    """Cleaning replaces the whole cleaned folder: refuse one whose old contents are not an earlier cleaned corpus
    (the raw files, a folder holding them, a user's folder), which the replacement would delete."""
    raw, cleaned = Path(os.path.realpath(raw_dir)), Path(os.path.realpath(cleaned_dir))
    if raw == cleaned or raw in cleaned.parents or cleaned in raw.parents:
        how = "is" if raw == cleaned else "lies inside" if raw in cleaned.parents else "contains"
        raise CorpusError(
            f"data.cleaned_corpora_dir ({cleaned_dir}) {how} data.raw_corpora_dir ({raw_dir}): cleaning replaces the "
            "cleaned folder whole, which would delete raw files or read its own output; choose a separate cleaned "
            "folder")
    if (cleaned_dir.exists() and not (cleaned_dir.is_dir() and not any(cleaned_dir.iterdir()))
            and not looks_like_cleaned_corpus(cleaned_dir)):
        raise CorpusError(
            f"data.cleaned_corpora_dir ({cleaned_dir}) exists and is no cleaned corpus of ivr's (no ivr "
            f"{MANIFEST_FILE}); cleaning replaces it whole, deleting what it holds: choose an empty or new folder")

"""Text that exists offline on every machine with Python: the one source of built-in corpora for the library
and the benchmarks.

* The Python standard library's ``.py`` sources: code. ``python_stdlib_files`` is the library's built-in
  corpus (``data.builtin_corpus: python_stdlib``); ``python_stdlib_paths``/``python_stdlib_texts`` take the
  exclusions the benchmarks measure with.
* Python's help topics (``pydoc_data.topics``): English prose with code examples; the library's general
  English reference set (``english_reference_texts``).
* Installed third-party packages' ``.py`` sources (``third_party_code``): code by other authors than the
  standard library's, where IVR must generalize.
* Every ``.py`` file of the environment, its packages and the standard library mixed (``environment_code_paths``,
  ``environment_code_texts``): the largest code corpus on the machine, for measuring how the stages scale.
* Documentation under ``/usr/share/doc`` (READMEs, changelogs, copyright notices), where the system has it.
* Translated program messages under ``/usr/share/locale`` (other languages).

Every list comes in a stable order (sorted paths, topic names or path hashes), so a corpus is the same on every
run.
Benchmarks cap a corpus's size with ``until_size``. General English word frequencies (``wordfreq``) are not
texts but a prior of selection and distillation: ``ivr.general_english``.
"""

from __future__ import annotations

import gettext
import hashlib
import importlib.util
import os
import struct
import sysconfig
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")

DOC_ROOT = Path("/usr/share/doc")
LOCALE_ROOT = Path("/usr/share/locale")
LIBRARY_SKIPPED_DIRS = frozenset({"site-packages", "test", "tests", "idle_test", "pydoc_data", "__pycache__"})
"""Directories left out of the library's standard-library corpus: tests, installed packages, help-topic prose."""


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib_paths(
    skip_dirs: Collection[str] = LIBRARY_SKIPPED_DIRS, skip_names: Collection[str] = ()
) -> list[Path]:
    """The standard library's ``.py`` files in sorted path order.

    Args:
        skip_dirs: leave out files under a directory of one of these names, at any depth below the root.
        skip_names: leave out files of these names (e.g. ``topics.py``, the help topics as Python source).
    """
    return [path for path in _py_files(stdlib_root(), skip_dirs) if path.name not in skip_names]


def _py_files(root: Path, skip_dirs: Collection[str]) -> list[Path]:
    """The ``.py`` files below ``root`` in sorted path order, leaving out every folder named in ``skip_dirs``.
    Skipped folders are not walked: the standard library's ``site-packages`` can hold a hundred times its files,
    and every command that reads the built-in corpus lists it."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name not in skip_dirs]
        found += [Path(folder, name) for name in files if name.endswith(".py")]
    return sorted(found)


def python_stdlib_files(max_mb: float) -> list[tuple[Path, str]]:
    """The library's built-in corpus ``python_stdlib``: (path, name under ``builtin/python_stdlib/``) of the
    standard library's own sources (no tests, no help-topic prose), up to ``max_mb`` megabytes on disk (the
    first file that would pass the cap ends the list)."""
    root = stdlib_root()
    files, total = [], 0
    for path in python_stdlib_paths():
        size = path.stat().st_size
        if total + size > max_mb * 1e6:
            if not files:
                raise ValueError(f"data.builtin_corpus_max_mb {max_mb} is below the size of the standard library's "
                                 f"first file ({size / 1e6:.3f} MB, {path.name}): raise it")
            break
        files.append((path, f"builtin/python_stdlib/{path.relative_to(root).as_posix()}"))
        total += size
    return files


def python_stdlib_texts(
    skip_dirs: Collection[str] = LIBRARY_SKIPPED_DIRS, skip_names: Collection[str] = ()
) -> Iterator[tuple[str, str]]:
    """(path relative to the standard library root, text) of ``python_stdlib_paths(skip_dirs, skip_names)``,
    read lazily as UTF-8 in text mode (line ends become ``\\n``; undecodable bytes become U+FFFD)."""
    root = stdlib_root()
    for path in python_stdlib_paths(skip_dirs, skip_names):
        yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8", errors="replace")


THIRD_PARTY_PACKAGES = (
    "_pytest", "attr", "click", "dateutil", "filelock", "fsspec", "jinja2", "jsonargparse", "markdown",
    "markdown_it", "packaging", "pluggy", "requests", "tqdm", "urllib3", "werkzeug", "yaml",
)
"""Installed packages whose sources make the third-party code corpus: Python written by other authors than the
standard library's (no generated tables, no copies of standard-library modules); all are dependencies of this
project or its tests, so they are installed wherever it is."""


def third_party_code(packages: Collection[str] = THIRD_PARTY_PACKAGES) -> Iterator[tuple[str, str]]:
    """(``package/relative path``, text) of the ``.py`` files of the installed ``packages``, lazily, packages
    in the given order and files in sorted path order; tests (``test``/``tests`` folders) are left out and a
    package that is not installed is skipped. Read as UTF-8 in text mode (undecodable bytes become U+FFFD).
    Code from other sources than the standard library: where IVR fitted on the standard library must
    generalize."""
    for name in packages:
        spec = importlib.util.find_spec(name)  # finds a top-level package without importing it
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for path in _py_files(root, {"test", "tests", "__pycache__"}):
            yield f"{name}/{path.relative_to(root).as_posix()}", path.read_text(encoding="utf-8", errors="replace")


def environment_code_paths() -> list[Path]:
    """The ``.py`` files of the installed packages (``purelib``: the virtual environment's where there is one)
    and of the standard library (without its own ``site-packages``), ordered by a hash of each file's path
    relative to its root: every prefix mixes many packages, and the order is the same on machines with the same
    packages."""
    files = {}
    for root in (Path(sysconfig.get_paths()[key]) for key in ("purelib", "stdlib")):
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if "site-packages" not in rel and path.is_file():
                files[hashlib.sha256(f"{root.name}/{rel}".encode()).hexdigest()] = path
    return [files[k] for k in sorted(files)]


def environment_code_texts(paths: Iterable[Path] | None = None) -> Iterator[str]:
    """Texts of ``paths`` (default: ``environment_code_paths()``), lazily, read as UTF-8 in text mode; files
    that are unreadable or not valid UTF-8 are left out."""
    for path in environment_code_paths() if paths is None else paths:
        try:
            yield path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue


def help_topics() -> list[tuple[str, str]]:
    """Python's help topics (``pydoc_data.topics``) as (topic, text), sorted by topic. The module is generated
    text: no byte-order mark and ``\\n`` line ends, so the texts are already as ``ivr.raw_records.normalize`` leaves
    them."""
    from pydoc_data.topics import topics

    return [(k, topics[k]) for k in sorted(topics)]


def english_reference_texts() -> list[str]:
    """General English prose that exists offline on every Python install: the help topics' texts. Used only to
    measure (distillation exactness, IVR's cost on general text)."""
    return [text for _, text in help_topics()]


def documentation_texts(
    suffixes: Collection[str] | None = None,
    skip_suffixes: Collection[str] = (),
    max_file_bytes: int | None = None,
    symlinks: bool = False,
    undecodable: Literal["skip", "replace"] = "skip",
    clean: bool = False,
    root: Path = DOC_ROOT,
) -> Iterator[str]:
    """Texts of the files under ``root`` (``/usr/share/doc``), lazily, in sorted path order; nothing where
    ``root`` is missing. Files are read as UTF-8 in text mode (line ends become ``\\n``).

    Args:
        suffixes: read only files with one of these suffixes (``""``: no suffix); ``None``: any suffix.
        skip_suffixes: never read files with one of these suffixes (compressed files, images).
        max_file_bytes: skip files larger than this.
        symlinks: also read symbolic links to files (the target's text).
        undecodable: ``skip`` files that are not valid UTF-8, or ``replace`` the bad bytes with U+FFFD.
        clean: drop a leading byte-order mark (the text is then what ``ivr.raw_records.normalize`` gives), and
            leave out blank texts, texts holding NUL characters and exact repeats of an earlier text.
    """
    if not root.is_dir():
        return
    errors = "strict" if undecodable == "skip" else "replace"
    seen: set[bytes] = set()
    for path in sorted(root.rglob("*")):
        if (suffixes is not None and path.suffix not in suffixes) or path.suffix in skip_suffixes:
            continue
        try:
            if not path.is_file() or (path.is_symlink() and not symlinks):
                continue
            if max_file_bytes is not None and path.stat().st_size > max_file_bytes:
                continue
            # utf-8-sig drops a leading byte-order mark and nothing else
            text = path.read_text(encoding="utf-8-sig" if clean else "utf-8", errors=errors)
        except (OSError, UnicodeDecodeError):
            continue
        if clean:
            digest = hashlib.sha256(text.encode()).digest()
            if not text.strip() or "\x00" in text or digest in seen:
                continue
            seen.add(digest)
        yield text


def translated_messages(lang: str, root: Path = LOCALE_ROOT) -> Iterator[tuple[str, str]]:
    """(file name, text) per message catalogue in ``root/<lang>/LC_MESSAGES/*.mo``, in sorted order: the
    catalogue's non-blank translations joined by newlines. Unreadable and empty catalogues are left out."""
    for path in sorted(Path(root, lang, "LC_MESSAGES").glob("*.mo")):
        try:
            with open(path, "rb") as f:  # a link whose target is gone is listed too
                catalog = gettext.GNUTranslations(f)._catalog
        # gettext's errors for a damaged catalogue: struct.error where it is cut short, ValueError for a plural
        # rule it cannot parse (UnicodeDecodeError for bytes that are not its charset), LookupError for an
        # unknown charset
        except (OSError, ValueError, LookupError, struct.error):
            continue
        text = "\n".join(v for k, v in catalog.items() if k and isinstance(v, str) and v.strip())
        if text:
            yield path.name, text


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def until_size(
    items: Iterable[T],
    limit: float,
    size: Callable[[T], int] = utf8_size,
    already: int = 0,
    stop_at_limit: bool = False,
) -> list[T]:
    """The leading ``items`` up to a total size: items are taken while the running total (starting at
    ``already``) is at most ``limit``, so the item that carries it past ``limit`` is the last one taken.
    Nothing when ``limit <= 0``.

    Args:
        size: an item's size (default: UTF-8 bytes of a text; ``len`` counts characters).
        already: size counted before the first item (another part of the same corpus).
        stop_at_limit: also stop once the total equals ``limit`` exactly.
    """
    def reached(total: float) -> bool:
        return total > limit or (stop_at_limit and total == limit)

    taken: list[T] = []
    if limit <= 0 or reached(already):
        return taken
    total = already
    for item in items:  # checked after each item, so that no item is read beyond the last one taken
        taken.append(item)
        total += size(item)
        if reached(total):
            break
    return taken


BUILTIN_CORPORA: dict[str, Callable[[float], list[tuple[Path, str]]]] = {"python_stdlib": python_stdlib_files}
"""Built-in corpora a configuration may name (``data.builtin_corpus``): name -> files up to a size in MB."""

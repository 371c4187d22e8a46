"""Stage stamps: which inputs and which code produced a stage's outputs, so a rerun rebuilds only what changed.

The code part of a stamp is derived, never listed by hand: the ``ivr`` modules a stage's functions come
from, closed over every ``ivr`` import those modules make (module level or inside functions, parent
packages included), hashed by source. Editing any of them makes the stamp stale.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import platform
import stat
import threading

from collections.abc import Iterable
from importlib import metadata
from functools import lru_cache
from pathlib import Path

from ivr.atomic import read_json_object, write_json

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# CPython 3.11 keeps one AST recursion counter per interpreter: two threads in ast.parse at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905), so stamps parse one at a time
_PARSE_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read a MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_current(stamp_path: Path, key: dict, outputs: list[Path], unsigned: Iterable[Path] = ()) -> bool:
    """True when the stamp records exactly ``key`` and every output exists as the stamp saw it written: the same
    files with the same sizes and modification times (``output_signature``), so an output truncated, replaced
    or left half-written since is rebuilt, not trusted. ``unsigned`` outputs need only exist (reports that
    another command rewrites). An unreadable stamp is not current: it costs a rebuild."""
    if not stamp_path.is_file() or not all(Path(p).exists() for p in outputs):
        return False
    try:
        stamp = read_json_object(stamp_path)
    except ValueError as err:
        log.warning("%s: rebuilding what it stamped", err)
        return False
    # compared as written: JSON reads a tuple in the key back as a list, which would never match it again
    if stamp.get("key") != json.loads(json.dumps(key)):
        return False
    return stamp.get("signatures") == _signatures(outputs, unsigned)


def write_stamp(stamp_path: Path, key: dict, outputs: list[Path], unsigned: Iterable[Path] = (), **extra) -> None:
    """Record that ``outputs`` were built from ``key``, with the signature of each but the ``unsigned`` ones, and
    any ``extra`` fields (a benchmark's results)."""
    # written after the outputs: a crash in between only costs a rebuild, never trusts a partial result
    write_json(stamp_path, {"key": key, "outputs": [str(p) for p in outputs],
                            "signatures": _signatures(outputs, unsigned), **extra})


def stamp_extra(stamp_path: Path, name: str) -> object:
    """The ``extra`` field ``name`` that ``write_stamp`` recorded (read after ``is_current`` found the stamp
    current)."""
    return read_json_object(stamp_path)[name]


def _signatures(outputs: list[Path], unsigned: Iterable[Path]) -> list:
    # by position, not by path: an artifact tree moved or spelled otherwise (relative, absolute) keeps its stamps
    skip = {Path(p) for p in unsigned}
    return [output_signature(p) for p in outputs if Path(p) not in skip]


def output_signature(path: Path) -> list:
    """Size and modification time of a file, or of every file under a folder (by relative path): cheap at any
    corpus size, and changed by anything that rewrites or truncates an output."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    files = []
    for f in path.rglob("*"):
        st = f.lstat()  # a link inside an output is not followed, nor a broken one stat-ed
        if stat.S_ISREG(st.st_mode):
            files.append([str(f.relative_to(path)), st.st_size, st.st_mtime_ns])
    return sorted(files)



def module_file(module: str, root: Path | None = None) -> Path | None:
    """The source file of ``ivr.x.y`` under ``root`` (default: where ``ivr`` is installed; a module or a
    package), None if it is not a module."""
    base = (root or PACKAGE_ROOT).joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=4096)
def _imports(source: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(level, module, names) of every import statement in ``source`` (``import a`` as level -1); cached by the
    source itself, since a run checks one stage's stamp again before each stage that reads its outputs."""
    with _PARSE_LOCK:
        tree = ast.parse(source)
    return tuple((-1, "", tuple(a.name for a in node.names)) if isinstance(node, ast.Import)
                 else (node.level, node.module or "", tuple(a.name for a in node.names))
                 for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _imported_modules(module: str, path: Path, root: Path | None) -> set[str]:
    """``ivr`` modules that ``module`` imports anywhere in its source (``from a import b`` counts ``a.b`` when
    that is a module), plus its parent packages, whose ``__init__`` runs on import."""
    found = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for level, base, imported in _imports(path.read_text(encoding="utf-8")):
        if level < 0:
            names = list(imported)
        else:
            if level:  # relative import: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a}" for a in imported]
        found |= {n for n in names if n.split(".")[0] == "ivr" and module_file(n, root) is not None}
    return found


def module_closure(modules: Iterable[str], root: Path | None = None) -> list[str]:
    """Every ``ivr`` module that importing ``modules`` executes, sorted."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(_imported_modules(name, path, root) - seen)
    return sorted(seen)


def code_fingerprint(modules: Iterable[str], root: Path | None = None) -> str:
    """Hash of the source of every module in the import closure of ``modules`` (read under ``root``)."""
    h = hashlib.sha256()
    for name in module_closure(modules, root):
        h.update(name.encode() + b"\0" + module_file(name, root).read_bytes() + b"\0")
    return h.hexdigest()[:16]


DECIDING_LIBRARIES = ("tokenizers", "transformers", "torch", "numpy", "scipy", "polars", "wordfreq")


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour decides stage outputs (a new ``tokenizers`` may cut text
    differently; a new solver may fit other scores), so that upgrading one rebuilds the stages."""
    # Python too: selection and verification read the standard library's sources and help topics
    return {**{name: metadata.version(name) for name in DECIDING_LIBRARIES}, "python": platform.python_version()}

"""When a stage runs: the key its stamp holds, the fingerprint of the code that decides its outputs, one writer
per artifact tree. :mod:`ivr.pipeline`'s stage functions call :func:`staged`; :mod:`ivr.stamps` reads and writes
the stamps themselves."""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock

from ivr.collector import collector_paused
from ivr.paths import ArtifactPaths
from ivr.stamps import code_fingerprint, is_current, library_versions, module_file, write_stamp
from ivr.tokenizers.io import file_sha256
from ivr.tokenizers.special import CONFIG_FILES


def code_modules(fn: Callable, seen: set | None = None) -> set[str]:
    """The ``ivr`` modules whose functions and classes ``fn`` uses, following the helpers of ``fn``'s own module
    but not the other stages it brings up to date first (the values of that module's ``RUNNERS``: their outputs
    are in its key, by hash)."""
    seen = set() if seen is None else seen
    home = fn.__module__
    if fn in seen:
        return set()
    seen.add(fn)
    names, todo = set(), [fn.__code__]
    while todo:  # nested functions and lambdas have code objects of their own
        code = todo.pop()
        names.update(code.co_names)
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    modules = set()
    for name in names:
        value = fn.__globals__.get(name)
        if isinstance(value, types.FunctionType) and value.__module__ == home:
            if value not in fn.__globals__.get("RUNNERS", {}).values():
                modules |= code_modules(value, seen)
        elif isinstance(value, types.ModuleType):
            modules.add(value.__name__)
        elif getattr(value, "__module__", "") and value.__module__.startswith("ivr."):
            modules.add(value.__module__)
    return modules - {home}


def stage_code_fingerprint(fn: Callable, root: Path | None = None) -> str:
    """Fingerprint of the code that decides ``fn``'s outputs: its module's source plus the import closure of
    every ``ivr`` module ``fn`` (and the helpers it calls there) uses, read under ``root`` (default: installed)."""
    own = module_file(fn.__module__, root).read_bytes()
    return hashlib.sha256(code_fingerprint(code_modules(fn), root).encode() + own).hexdigest()[:16]


def plain(settings) -> dict:
    """A JSON-ready view of a settings dataclass, for stamps."""
    return json.loads(json.dumps(asdict(settings), default=str))


def sha(path: Path) -> str:
    return file_sha256(path) if Path(path).is_file() else "absent"


def config_shas(tokenizer_dir: Path) -> dict[str, str]:
    """The hashes of the files that name a tokenizer's special tokens (``read_special_tokens`` reads them all)."""
    return {name: sha(tokenizer_dir / name) for name in CONFIG_FILES}


def staged(stage: str, paths: ArtifactPaths, key: Callable[[], dict], outputs: list[Path] | Callable[[], list[Path]],
           build: Callable[[], None], code: Callable, unsigned: list[Path] = ()) -> list[Path]:
    """Run ``build`` unless the stamp shows these outputs were built from exactly ``key()`` by this code and are
    as it left them (``unsigned`` ones need only exist: ``stamps.is_current``). ``key`` is read under the lock,
    since another run may rebuild the inputs it hashes until then. ``outputs`` may be a function of what the last
    build wrote (align's optional files): it is asked before the check and after a build."""
    stamp = paths.stamp(stage)
    code_key = {"code": stage_code_fingerprint(code), "libraries": library_versions()}
    listed = outputs if callable(outputs) else lambda: outputs
    with artifacts_lock(paths):
        key_now = {**key(), **code_key}
        if not is_current(stamp, key_now, listed(), unsigned):
            # gone before the first output is touched: a build that fails or is killed leaves outputs no stamp
            # vouches for, which the next run rebuilds
            stamp.unlink(missing_ok=True)
            with collector_paused():
                build()
            write_stamp(stamp, key_now, listed(), unsigned)
        return listed()


def artifacts_lock(paths: ArtifactPaths) -> FileLock:
    """One writer at a time per artifact tree; others wait (and then find the outputs current)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    return FileLock(paths.lock)

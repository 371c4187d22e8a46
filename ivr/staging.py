"""When a stage runs: the key its stamp holds, the fingerprint of the code that decides its outputs, one writer
per artifact tree. :mod:`ivr.pipeline`'s stage functions call :func:`staged`; :mod:`ivr.stamps` reads and writes
the stamps themselves."""

from __future__ import annotations

import dis
import errno
import hashlib
import json
import logging
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout

from ivr.collector import collector_paused
from ivr.paths import ArtifactPaths
from ivr.stamps import code_fingerprint, is_current, library_versions, module_file, write_stamp
from ivr.stamps import file_sha256
from ivr.tokenizers.special import CONFIG_FILES

log = logging.getLogger(__name__)

# how long a run waits for another run's lock on an artifact tree before it says it is waiting
LOCK_NOTICE_SECONDS = 2.0


def code_modules(fn: Callable, seen: set | None = None) -> set[str]:
    """The ``ivr`` modules whose functions and classes ``fn`` uses, following the helpers of ``fn``'s own module
    but not the other stages it brings up to date first (the values of that module's ``RUNNERS``: their outputs
    are in its key, by hash)."""
    return _walk(fn, set() if seen is None else seen)[0]


_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME"}
_ATTRIBUTE_OPS = {"LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR", "STORE_ATTR", "DELETE_ATTR"}


def _walk(fn: Callable, seen: set) -> tuple[set[str], set[str]]:
    """``code_modules`` of ``fn``, and every attribute name ``fn`` and the helpers followed there use."""
    home = fn.__module__
    if fn in seen:
        return set(), set()
    seen.add(fn)
    names, used, todo = set(), set(), [fn.__code__]
    while todo:  # nested functions and lambdas have code objects of their own
        code = todo.pop()
        # a global (a function, module or class) apart from an attribute (``config.verify``), which may share a
        # global's name (the ``verify`` command) without naming it
        for ins in dis.get_instructions(code):
            if ins.opname in _GLOBAL_OPS:
                names.add(ins.argval)
            elif ins.opname in _ATTRIBUTE_OPS:
                used.add(ins.argval)
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    modules = set()
    for name in names:
        value = fn.__globals__.get(name)
        if isinstance(value, types.FunctionType) and value.__module__ == home:
            if value not in fn.__globals__.get("RUNNERS", {}).values():
                more, more_names = _walk(value, seen)
                modules |= more
                used |= more_names
        elif isinstance(value, types.ModuleType):
            modules.add(value.__name__)
        elif getattr(value, "__module__", "") and value.__module__.startswith("ivr."):
            modules.add(value.__module__)
    return modules - {home}, used


def settings_modules(fn: Callable, names: set[str] | None = None) -> set[str]:
    """The modules of the settings ``fn`` reads by attribute (``config.select.protected()``; ``names``: the names
    it uses, where already walked): their methods decide its outputs too, and the attribute's name can be a
    stage's own (``select``), which ``code_modules`` skips."""
    config_class = fn.__globals__.get("PipelineConfig")  # the stage module's own (importing it here would put
    # every stage's code into this module's import closure)
    if config_class is None:
        return set()
    hints = typing.get_type_hints(config_class)
    return {hints[n].__module__ for n in (_walk(fn, set())[1] if names is None else names)
            if n in hints and getattr(hints[n], "__module__", "").startswith("ivr.")}


def stage_code_fingerprint(fn: Callable, root: Path | None = None) -> str:
    """Fingerprint of the code that decides ``fn``'s outputs: its module's source plus the import closure of
    every ``ivr`` module ``fn`` (and the helpers it calls there) uses, and the source of the settings modules it
    reads (those alone: a package's ``__init__`` would bring in other stages' code), read under ``root``
    (default: installed)."""
    own = module_file(fn.__module__, root).read_bytes()
    modules, names = _walk(fn, set())
    settings = b"".join(module_file(m, root).read_bytes() for m in sorted(settings_modules(fn, names)))
    return hashlib.sha256(code_fingerprint(modules, root).encode() + own + settings).hexdigest()[:16]


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


@contextmanager
def artifacts_lock(paths: ArtifactPaths) -> Iterator[None]:
    """One writer at a time per artifact tree; others wait, saying so (and then find the outputs current)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(paths.lock)
    try:
        lock.acquire(timeout=LOCK_NOTICE_SECONDS)
    except Timeout:
        log.info("waiting for %s: another ivr run is writing this artifact tree", paths.lock)
        lock.acquire()
    except PermissionError as err:  # a read-only tree: every stage checks its stamp under the lock
        raise PermissionError(f"{paths.root}: cannot create the lock file {paths.lock.name} ({err.strerror}); ivr "
                              "needs an artifact tree it can write (data.artifacts_dir): copy a read-only one "
                              "first") from None
    except OSError as err:
        if err.errno != errno.EROFS:
            raise
        raise PermissionError(f"{paths.root}: on a read-only file system; ivr needs an artifact tree it can write "
                              "(data.artifacts_dir): copy it first") from None
    try:
        yield
    finally:
        lock.release()

"""Write-then-rename helpers: an interrupted run never leaves a half-written artifact in place.

Artifacts get the permissions an ordinary ``open``/``mkdir`` would give (``0666``/``0777`` less the umask),
not the owner-only ones of ``mkstemp``/``mkdtemp``: exported models are read by other users and by serving
containers. A directory is replaced by an atomic exchange of the two paths where the kernel offers one, so
a concurrent reader sees the old or the new directory, never none.

Scratch paths are named ``.{target}.{host}-{pid}.*`` so that the next write into the same folder can tell those
of a process that was killed (same host, pid no longer running) from those of a concurrent writer, and remove
them, whichever target they were for (a killed run may have been packing blocks of another size): a killed run
leaves no scratch behind for long, and never one that is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2``); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def scratch_prefix(target: Path) -> str:
    """The name prefix of this process's scratch paths next to ``target``."""
    return f".{target.name}.{socket.gethostname()}-{os.getpid()}."


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_scratch(target: Path) -> list[Path]:
    """Remove the scratch paths next to ``target``, of any target in its folder, whose writer, a process of this
    host, no longer runs; returns them. Other hosts' and running processes' scratch is left alone."""
    marker = f".{socket.gethostname()}-"
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.iterdir():
        at = path.name.find(marker, 1)
        if not path.name.startswith(".") or at < 0:
            continue
        pid, dot, _ = path.name[at + len(marker):].partition(".")
        if dot and pid.isdigit() and not _running(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_scratch(target)
    fd, tmp = tempfile.mkstemp(prefix=scratch_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``target``; on success it replaces ``target``."""
    target = Path(target)
    if target.is_symlink():  # a linked folder (on a larger disk) is replaced where it lies; the link stays
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_scratch(target)
    tmp_path = Path(tempfile.mkdtemp(prefix=scratch_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp_path
        tmp_path.chmod(0o777 & ~_umask())
        # a fresh target: the plain rename is atomic; an existing one: swap, then delete the old one (now at tmp)
        try:
            os.rename(tmp_path, target)
        except OSError:
            if not _exchange(tmp_path, target):
                # no exchange on this system: move the old directory aside under a unique name first
                old = Path(tempfile.mkdtemp(prefix=scratch_prefix(target), suffix=".old", dir=target.parent))
                os.replace(target, old / "d")
                os.replace(tmp_path, target)
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def write_text(target: str | Path, text: str) -> Path:
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, obj: object) -> Path:
    return write_text(target, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path`` (UTF-8): a ``ValueError`` naming the file where it is not valid JSON or not an
    object; ``OSError`` where it cannot be read. Each format's owner module says what to do about either."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a JSON object")
    return obj

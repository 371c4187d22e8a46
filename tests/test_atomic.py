"""Atomic writes: ordinary permissions, and directory replacement that is safe under concurrent use."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from ivr.atomic import atomic_dir, atomic_file, write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_and_directories_get_umask_permissions(tmp_path, umask_022):
    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "weights.bin").write_bytes(b"0")
    with atomic_file(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"1")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_a_failed_write_leaves_the_old_artifact(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_concurrent_writers_and_a_reader_never_fail_or_see_the_target_missing(tmp_path):
    target = tmp_path / "shared"
    errors, missing, stop = [], [], threading.Event()

    def writer(tag: str) -> None:
        try:
            for i in range(150):
                with atomic_dir(target) as tmp:
                    (tmp / "value").write_text(f"{tag}{i}")
        except Exception as err:  # collected: a thread's exception would otherwise vanish
            errors.append(err)

    def reader() -> None:
        while not stop.is_set():
            if not target.exists():
                missing.append(1)

    with atomic_dir(target) as tmp:
        (tmp / "value").write_text("start")
    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert missing == []
    assert (target / "value").read_text() in {"a149", "b149"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_a_killed_writers_scratch_is_removed_and_a_running_ones_kept(tmp_path):
    target = tmp_path / "pretokens"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = tmp_path / f".pretokens.{host}-{dead.pid}.abc.tmp"
    (killed / "part").mkdir(parents=True)
    killed_file = tmp_path / f".pretokens.{host}-{dead.pid}.def.tmp"
    killed_file.write_text("half")
    running = tmp_path / f".pretokens.{host}-{os.getpid()}.ghi.tmp"
    running.mkdir()
    other_host = tmp_path / f".pretokens.{host}x-{dead.pid}.jkl.tmp"
    other_host.mkdir()
    # a killed run's scratch for another target in the folder (blocks of another size) goes too
    other_target = tmp_path / f".original-bs64.{host}-{dead.pid}.blocks-mno"
    other_target_running = tmp_path / f".original-bs64.{host}-{os.getpid()}.blocks-pqr"
    other_target.mkdir()
    other_target_running.mkdir()
    user_file = tmp_path / f".notes.{host}-draft.txt"  # the host in a name, but no pid after it
    user_file.write_text("mine")
    with atomic_dir(target) as tmp:
        (tmp / "value").write_text("new")
    assert not killed.exists() and not killed_file.exists() and not other_target.exists()
    assert running.exists() and other_host.exists() and other_target_running.exists() and user_file.exists()
    assert (target / "value").read_text() == "new"


def test_a_linked_folder_is_replaced_where_it_lies_and_the_link_kept(tmp_path):
    (tmp_path / "bigdisk" / "cleaned").mkdir(parents=True)
    (tmp_path / "bigdisk" / "cleaned" / "old.txt").write_text("old", encoding="utf-8")
    link = tmp_path / "cleaned"
    link.symlink_to(tmp_path / "bigdisk" / "cleaned")
    with atomic_dir(link) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert link.is_symlink() and sorted(os.listdir(link)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["bigdisk", "cleaned"]  # no scratch or old link left beside it
    assert sorted(os.listdir(tmp_path / "bigdisk")) == ["cleaned"]


def test_the_scratch_of_another_user_s_running_writer_is_kept(tmp_path, monkeypatch):
    """A process that may not be signalled belongs to another user and is running: its scratch is in use."""
    target = tmp_path / "pretokens"
    theirs = tmp_path / f".pretokens.{socket.gethostname()}-{os.getpid() + 1}.abc.tmp"
    theirs.mkdir()

    def not_permitted(pid, signal):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_permitted)
    with atomic_dir(target) as tmp:
        (tmp / "value").write_text("new")
    assert theirs.is_dir() and (target / "value").read_text() == "new"


def test_without_an_atomic_exchange_a_directory_is_still_replaced_and_no_scratch_is_left(tmp_path, monkeypatch):
    """Where the kernel offers no exchange of two paths, the old directory is moved aside, then deleted."""
    import ivr.atomic

    monkeypatch.setattr(ivr.atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "shared"
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert os.listdir(target) == ["new.txt"] and (target / "new.txt").read_text() == "new"
    assert os.listdir(tmp_path) == ["shared"]


def test_json_is_written_as_given_key_order_and_characters_kept(tmp_path):
    """Reports and stamps are read by people: keys stay in the order the code gives them, text stays readable."""
    from ivr.atomic import write_json

    path = write_json(tmp_path / "report.json", {"zeta": "naïve", "alpha": [1, 2]})
    assert path.read_text(encoding="utf-8") == '{\n  "zeta": "naïve",\n  "alpha": [\n    1,\n    2\n  ]\n}\n'


def test_a_json_file_that_is_not_utf8_is_named_as_not_valid_json(tmp_path):
    """A damaged record (binary garbage) is reported with its path, as any other invalid JSON is."""
    from ivr.atomic import read_json_object

    path = tmp_path / "manifest.json"
    path.write_bytes(b'{"files": "\xff\xfe"}')
    with pytest.raises(ValueError, match=r"manifest\.json: not valid JSON \("):
        read_json_object(path)

"""Files survive crashes and files from elsewhere are data: stale temporaries, directory
fsync, writers killed at random moments, and a fuzzed loader (issue 17)."""
import errno
import fcntl
import os
import stat
import threading

import numpy as np
import pytest

import fastbp
from fastbp import io

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _temporaries(folder):
    return sorted(p.name for p in folder.glob(".fastbp-*.tmp"))


# -- temporaries of writers that died -----------------------------------------------------
def test_next_write_removes_temporaries_of_dead_writers(tmp_path):
    # what a writer killed mid-write leaves behind: an unlocked .fastbp-*.tmp
    for name in (".fastbp-k1ll3d.tmp", ".fastbp-dead00.tmp"):
        (tmp_path / name).write_bytes(b"half a model")
    other = tmp_path / "fastbp-not-ours.tmp"          # not our pattern: kept
    other.write_bytes(b"x")
    fastbp.MLP([3, 2, 2]).save(tmp_path / "m.npz")
    assert _temporaries(tmp_path) == []
    assert other.exists() and fastbp.load(tmp_path / "m.npz").sizes == [3, 2, 2]


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    live = tmp_path / ".fastbp-alive1.tmp"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)          # as the writer does from creation to rename
        io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"new"))
        assert _temporaries(tmp_path) == [live.name]
    finally:
        os.close(fd)
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"newer"))   # lock gone: removed
    assert _temporaries(tmp_path) == [] and (tmp_path / "a.txt").read_bytes() == b"newer"


def test_links_and_folders_named_like_temporaries_are_left_alone(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    os.symlink(target, tmp_path / ".fastbp-link.tmp")
    (tmp_path / ".fastbp-dir.tmp").mkdir()
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
    assert target.read_bytes() == b"keep me"
    assert (tmp_path / ".fastbp-link.tmp").is_symlink() and (tmp_path / ".fastbp-dir.tmp").is_dir()


def test_concurrent_writers_never_remove_each_others_temporaries(tmp_path):
    # 4 threads writing into one folder: each one's cleanup runs while the others write
    errors = []

    def writer(k):
        try:
            for i in range(40):
                io.atomic_write(tmp_path / f"f{k}.bin", lambda f: f.write(bytes([k, i]) * 5000))
        except Exception as exc:   # pragma: no cover - the assertion below reports it
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [(tmp_path / f"f{k}.bin").read_bytes()[:2] for k in range(4)] == [bytes([k, 39]) for k in range(4)]
    assert _temporaries(tmp_path) == []


def test_write_retries_when_its_new_temporary_is_removed_before_it_is_locked(tmp_path, monkeypatch):
    # the race a cleaner can win: it removes the file between mkstemp and the writer's flock
    real = io.tempfile.mkstemp
    calls = []

    def mkstemp(**kw):
        fd, name = real(**kw)
        if not calls:
            os.unlink(name)            # what a cleaner that got there first does
        calls.append(name)
        return fd, name
    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"ok"))
    assert len(calls) == 2 and (tmp_path / "a.txt").read_bytes() == b"ok"


# -- the rename is made durable -------------------------------------------------------------
def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fastbp.MLP([3, 2, 2]).save(tmp_path / "m.npz")
    assert events == ["fsync file", "rename", "fsync folder"]


def test_a_failing_folder_fsync_is_reported_unless_unsupported(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync_fails(code):
        def fsync(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(code, os.strerror(code))
            real_fsync(fd)
        return fsync
    monkeypatch.setattr(os, "fsync", fsync_fails(errno.EINVAL))   # cannot sync folders here
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"1"))
    monkeypatch.setattr(os, "fsync", fsync_fails(errno.EIO))      # the disk failed
    with pytest.raises(OSError, match="Input/output error"):
        io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"2"))

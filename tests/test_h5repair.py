"""Clearing the superblock flags a killed SWMR writer leaves behind (streamreg._h5repair)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from streamreg._h5repair import _lookup3, clear_status_flags, read_status_flags

WRITE_ACCESS, SWMR_WRITE = 0x01, 0x04
FRAME = 4  # values per frame in the writer's dataset

WRITER = f"""
import sys
import h5py
import numpy as np

path, userblock = sys.argv[1], int(sys.argv[2])
f = h5py.File(path, "w", libver="latest", userblock_size=userblock)
d = f.create_dataset("x", shape=(0, {FRAME}), maxshape=(None, {FRAME}), chunks=(8, {FRAME}), dtype="f4")
f.swmr_mode = True
i = 0
while True:
    d.resize((i + 1, {FRAME}))
    d[i] = np.arange({FRAME}, dtype="f4") + 10 * i
    d.flush()
    i += 1
    print(i, flush=True)
"""


def expected_frames(n):
    """The values the writer puts in its first ``n`` frames."""
    return np.arange(FRAME, dtype="f4") + 10 * np.arange(n, dtype="f4")[:, None]


def make_latest(path, **kwargs):
    """Write and close a small ``libver="latest"`` file (version 3 superblock) at ``path``."""
    with h5py.File(path, "w", libver="latest", **kwargs) as f:
        f["a"] = np.arange(10)


def rewrite_superblock(path, *, flags, eof_delta=0, fix_checksum=True):
    """Set the flags (and shift the EOF address) of the superblock at offset 0, as a crashed writer might."""
    raw = bytearray(path.read_bytes())
    raw[11] = flags
    eof = int.from_bytes(raw[28:36], "little") + eof_delta
    raw[28:36] = eof.to_bytes(8, "little")
    if fix_checksum:
        raw[44:48] = _lookup3(bytes(raw[:44])).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def read_counts(proc, frames, deadline):
    """Read the writer's printed frame counts until it reports ``frames``; return the last count."""
    fd, buf, count = proc.stdout.fileno(), b"", 0
    while count < frames:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"the writer reported only {count} frames in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            pytest.fail(f"the writer exited early: {proc.stderr.read().decode()}")
        *lines, buf = (buf + chunk).split(b"\n")
        if lines:
            count = int(lines[-1])
    return count


def kill_writer(path, userblock, frames=30):
    """Run the SWMR writer in a subprocess, SIGKILL it after ``frames`` flushed frames; return the last count."""
    cmd = [sys.executable, "-c", WRITER, str(path), str(userblock)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        count = read_counts(proc, frames, time.monotonic() + 6)
    finally:
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return count


def test_lookup3_matches_hdf5_superblock_checksum(tmp_path):
    """Our lookup3 reproduces the superblock checksum that HDF5 itself wrote."""
    path = tmp_path / "fresh.h5"
    make_latest(path)
    raw = path.read_bytes()
    assert raw[8] == 3  # version 3 superblock: 12 fixed bytes, four 8-byte addresses, checksum
    assert _lookup3(raw[:44]) == int.from_bytes(raw[44:48], "little")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("userblock", [0, 512])
def test_killed_swmr_writer_is_recovered(tmp_path, userblock):
    """A file whose SWMR writer was SIGKILLed reopens for writing, with every flushed frame, once cleared."""
    path = tmp_path / "killed.h5"
    count = kill_writer(path, userblock)

    assert read_status_flags(path) == WRITE_ACCESS | SWMR_WRITE
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r+")

    assert clear_status_flags(path) is True
    assert read_status_flags(path) == 0
    assert clear_status_flags(path) is False
    size = path.stat().st_size
    with h5py.File(path, "r+") as f:
        d = f["x"]
        assert d.shape[0] >= count
        np.testing.assert_array_equal(d[:count], expected_frames(count))
        d.resize((count + 5, FRAME))
        d[count:] = -1.0
    assert path.stat().st_size >= size  # nothing written by the killed writer was cut off

    with h5py.File(path, "r+", libver="latest") as f:
        f.swmr_mode = True
        d = f["x"]
        d.resize((count + 6, FRAME))
        d[count + 5] = 7.0
        d.flush()
    with h5py.File(path, "r") as f:
        data = f["x"][...]
    np.testing.assert_array_equal(data[:count], expected_frames(count))
    assert (data[count : count + 5] == -1.0).all()
    assert (data[count + 5] == 7.0).all()


def test_clear_restores_the_original_superblock(tmp_path):
    """Clearing flags set on a cleanly closed file gives back its exact original bytes."""
    path = tmp_path / "flagged.h5"
    make_latest(path)
    original = path.read_bytes()
    rewrite_superblock(path, flags=WRITE_ACCESS | SWMR_WRITE)
    assert read_status_flags(path) == WRITE_ACCESS | SWMR_WRITE
    assert clear_status_flags(path) is True
    assert path.read_bytes() == original


def test_stale_eof_address_is_raised_to_file_size(tmp_path):
    """A stored end-of-file address short of the file's end is raised to it, so HDF5 keeps every byte."""
    path = tmp_path / "stale.h5"
    make_latest(path)
    original = path.read_bytes()
    rewrite_superblock(path, flags=WRITE_ACCESS, eof_delta=-100)
    assert clear_status_flags(path) is True
    assert path.read_bytes() == original


def test_truncated_file_is_refused_and_unchanged(tmp_path):
    """A stored end-of-file address beyond the file's end (a truncated file) raises and writes nothing."""
    path = tmp_path / "truncated.h5"
    make_latest(path)
    rewrite_superblock(path, flags=WRITE_ACCESS | SWMR_WRITE, eof_delta=100)
    before = path.read_bytes()
    with pytest.raises(OSError, match=re.escape(str(path)) + ".*truncated"):
        clear_status_flags(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"plain text\n", b"not an HDF5 file " * 200])
def test_non_hdf5_file_is_refused_and_unchanged(tmp_path, content):
    """A file without an HDF5 signature raises OSError naming it and is left byte-for-byte unchanged."""
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(OSError, match=re.escape(str(path))):
        clear_status_flags(path)
    with pytest.raises(OSError, match=re.escape(str(path))):
        read_status_flags(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("corrupt_at", [11, 44])
def test_bad_checksum_is_refused_and_unchanged(tmp_path, corrupt_at):
    """A superblock whose flags or checksum bytes disagree raises OSError naming the file and writes nothing."""
    path = tmp_path / "corrupt.h5"
    make_latest(path)
    raw = bytearray(path.read_bytes())
    raw[corrupt_at] ^= 0x05
    path.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=re.escape(str(path)) + ".*checksum"):
        clear_status_flags(path)
    assert path.read_bytes() == bytes(raw)


@pytest.mark.parametrize("libver", [None, ("v108", "v108")])
def test_older_superblocks_need_nothing(tmp_path, libver):
    """A version 0 (default libver) or cleanly closed version 2 superblock reads 0 and is not touched."""
    path = tmp_path / "old.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f["a"] = np.arange(10)
    original = path.read_bytes()
    assert original[8] == (0 if libver is None else 2)
    assert read_status_flags(path) == 0
    assert clear_status_flags(path) is False
    assert path.read_bytes() == original


def test_superblock_version_matches_what_hdf5_reports(tmp_path):
    """superblock_version agrees with HDF5's own file-creation property list, and is 0 for other files."""
    from streamreg._h5repair import superblock_version

    for libver in ("earliest", "latest"):
        path = tmp_path / f"{libver}.h5"
        with h5py.File(path, "w", libver=libver) as f:
            f["x"] = np.arange(3)
            expected = f.id.get_create_plist().get_version()[0]
        assert superblock_version(path) == expected
    (tmp_path / "text.txt").write_text("not hdf5")
    assert superblock_version(tmp_path / "text.txt") == 0
    assert superblock_version(tmp_path / "missing.h5") == 0

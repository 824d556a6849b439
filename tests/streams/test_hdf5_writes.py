"""HDF5Stream writes: whole chunks once, durable flush(), SWMR readers, a full disk, scalar datasets, get_into."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc

import h5py
import numpy as np
import pytest

from streamreg import ChunkShapeError, OutputExistsError
from streamreg.streams import HDF5Stream


def wchar() -> int:
    """Bytes this process has passed to write() and its kin so far (Linux /proc/self/io)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def open_fds_under(folder: str) -> list[str]:
    """Targets of this process's open file descriptors that lie under ``folder``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the fd of listdir itself)
            continue
        if target.startswith(os.path.realpath(folder)):
            found.append(target)
    return found


def indexed(t0: int, t1: int, frame: tuple[int, ...]) -> np.ndarray:
    """Frames ``[t0, t1)`` whose every value is ``t + 1``: never zero, so a fill value shows."""
    return np.broadcast_to(np.arange(t0 + 1, t1 + 1, dtype=np.float32).reshape(-1, *[1] * len(frame)),
                           (t1 - t0, *frame)).copy()


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")


# -- no rewriting ---------------------------------------------------------------------------


@pytest.mark.parametrize("flushes", [0, 4])
def test_small_puts_do_not_rewrite_chunks(tmp_path, flushes):
    """(20000, 4) float32 put 5 frames at a time writes a small multiple of the file, not one chunk per put.

    Each flush() (a checkpoint) may write the partial last chunk once more; nothing else is rewritten.
    """
    path = tmp_path / "o.h5"
    frames = np.random.default_rng(0).random((20000, 4), dtype=np.float32)
    before = wchar()
    with HDF5Stream(f"{path}:/y", "w-") as out:
        for i, t in enumerate(range(0, 20000, 5)):
            out.put(frames[t : t + 5])
            if flushes and i % (4000 // flushes) == 0:
                out.flush()
    written = wchar() - before
    size = os.path.getsize(path)
    assert written <= (3 + flushes) * size, f"{written} bytes written for a {size}-byte file"
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["y"][:], frames)
        assert f["y"].chunks[0] * 16 == 1 << 20  # still ~1 MiB chunks: later reads stay fast


def test_large_aligned_puts_are_written_once(tmp_path):
    """Puts of whole chunks, aligned or not, write about the data's size (each chunk once)."""
    path = tmp_path / "o.h5"
    frames = np.random.default_rng(1).random((1024 + 77, 64, 64), dtype=np.float32)
    before = wchar()
    with HDF5Stream(f"{path}:/y", "w-") as out:  # 64 frames per 1 MiB chunk
        out.put(frames[:512])
        out.put(frames[512:530])
        out.put(frames[530:])
    written = wchar() - before
    assert written <= 1.1 * frames.nbytes + (2 << 20)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["y"][:], frames)


def test_flush_makes_every_frame_put_durable(tmp_path):
    """A copy of the file taken right after flush() (what a SIGKILL leaves) holds every frame put so far."""
    path, snap = tmp_path / "o.h5", tmp_path / "snapshot.h5"
    frames = indexed(0, 300, (8, 8))
    with HDF5Stream(f"{path}:/y", "w-", chunk_frames=16) as out:
        for t, n in ((0, 7), (7, 40), (47, 3), (50, 250)):
            out.put(frames[t : t + n])
            out.flush()
            shutil.copyfile(path, snap)
            with h5py.File(snap, "r") as f:
                np.testing.assert_array_equal(f["y"][:], frames[: t + n])
        out.truncate(20)
        out.put(-frames[:5])
        out.flush()
        shutil.copyfile(path, snap)
    with h5py.File(snap, "r") as f:
        np.testing.assert_array_equal(f["y"][:], np.concatenate([frames[:20], -frames[:5]]))


def test_buffered_frames_are_read_back_and_overwrite_in_r_plus(tmp_path):
    """An 'r+' writer over existing frames: reads see the frames put (buffered or not), the rest stays."""
    path = tmp_path / "o.h5"
    old = indexed(0, 40, (3,))
    with h5py.File(path, "w") as f:
        f.create_dataset("y", data=old, chunks=(8, 3), maxshape=(None, 3))
    with HDF5Stream(f"{path}:/y", "r+") as out:
        out.put(-old[:11])
        assert len(out) == 40 and out.frames_written == 11
        np.testing.assert_array_equal(out.get(40), np.concatenate([-old[:11], old[11:]]))
        buf = np.empty((40, 3), dtype=np.float32)
        out.seek(5)
        assert out.get_into(buf) == 35
        np.testing.assert_array_equal(buf[:35], np.concatenate([-old[5:11], old[11:]]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["y"][:], np.concatenate([-old[:11], old[11:]]))


def test_get_into_reads_without_allocating(tmp_path):
    """get_into reads 4 MiB into a given buffer with next to no new memory (Dataset.read_direct)."""
    path = tmp_path / "i.h5"
    data = np.random.default_rng(2).random((256, 64, 64), dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(64, 64, 64))
    out = np.empty((100, 64, 64), dtype=np.float32)
    with HDF5Stream(f"{path}:/x") as s:
        s.get_into(out)  # warm-up
        tracemalloc.start()
        try:
            k = s.get_into(out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert k == 100 and peak < 256 << 10, peak
        np.testing.assert_array_equal(out, data[100:200])
        assert s.get_into(out) == 56 and s.position == 256
        np.testing.assert_array_equal(out[:56], data[200:])


# -- SWMR --------------------------------------------------------------------------------------

_READER = textwrap.dedent("""
    import sys, time
    import h5py, numpy as np
    path, total = sys.argv[1], int(sys.argv[2])
    deadline, seen, polls = time.monotonic() + 20, 0, 0
    while seen < total and time.monotonic() < deadline:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
        except (OSError, KeyError):
            continue
        with f:
            while "y" in f and seen < total and time.monotonic() < deadline:
                ds = f["y"]
                ds.refresh()
                y = ds[:].reshape(len(ds), -1)
                polls += 1
                want = np.arange(1, len(y) + 1, dtype=np.float32)[:, None]
                bad = np.nonzero((y != want).any(axis=1))[0]
                if len(bad):
                    print(f"frame {bad[0]} of {len(y)} visible reads {y[bad[0]].min()}, not {bad[0] + 1}")
                    sys.exit(1)
                seen = len(y)
            time.sleep(0.001)
    print(f"saw {seen} frames in {polls} polls")
    sys.exit(0 if seen == total else 2)
""")


@pytest.mark.parametrize("trial", range(3))
def test_swmr_reader_never_sees_a_chunk_before_its_data(tmp_path, trial):
    """A reader process polling a SWMR writer sees only frames equal to what was written, never fill values.

    The first put is large (20 MiB, slow to write), so a writer that published the grown extent before the
    data (switching SWMR on between resize and write) would show the reader zeros.
    """
    path, total = tmp_path / "live.h5", 600
    frames = indexed(0, total, (64, 64))
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(path), str(total)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with HDF5Stream(f"{path}:/y", "w-", swmr=True, chunk_frames=32) as out:
            time.sleep(0.3)  # the reader is polling for the file by now
            out.put(frames[:320])
            for t in range(320, total, 5):
                out.put(frames[t : t + 5])
                if t % 45 == 0:
                    out.flush()
                time.sleep(0.001)
        text, _ = reader.communicate(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert reader.returncode == 0, text


# -- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only; skipped where mounting is not permitted), unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_disk_mid_run_raises_naming_the_file_and_keeps_only_correct_frames(small_disk):
    """Disk full: OSError naming file and dataset; the dataset is cut back to what the last flush() made durable,
    every frame in it is right, the stream takes no more frames and close() releases the file."""
    path = small_disk / "o.h5"
    frames = indexed(0, 64 * 8, (64, 64))  # 64 frames per 1 MiB chunk; the disk holds less than two
    out = HDF5Stream(f"{path}:/y", "w-")
    flushed = []

    def write_all() -> None:
        for t in range(0, len(frames), 16):
            out.put(frames[t : t + 16])
            if t % 32 == 16:
                out.flush()
                flushed.append(out.frames_written)

    with pytest.raises(OSError, match=r"No space left") as info:
        write_all()
    durable = flushed[-1] if flushed else 0
    text = str(info.value)
    assert os.path.realpath(path) in text and "'/y'" in text
    assert durable > 0
    with pytest.raises(OSError, match="earlier write failed"):
        out.put(frames[:1])
    out.close()
    assert out.closed and open_fds_under(str(small_disk)) == []
    with h5py.File(path, "r") as f:
        y = f["y"]
        assert len(y) == durable
        np.testing.assert_array_equal(y[:], frames[:durable])


def test_full_disk_at_close_still_releases_the_file(small_disk):
    """A close whose final flush fails raises naming the file, yet leaves the stream closed and no fd open;
    the dataset holds no frame that was not written."""
    path = small_disk / "o.h5"
    with open(small_disk / "filler", "wb") as f:
        f.write(bytes(1_900_000))
    out = HDF5Stream(f"{path}:/y", "w-")
    frames = indexed(0, 30, (64, 64))
    out.put(frames)  # half a chunk: buffered
    with pytest.raises(OSError, match="No space left") as info:
        out.close()
    assert os.path.realpath(path) in str(info.value)
    assert out.closed and open_fds_under(str(small_disk)) == []
    out.close()  # idempotent, no second error
    os.remove(small_disk / "filler")
    with h5py.File(path, "r") as f:
        n = len(f["y"])
        np.testing.assert_array_equal(f["y"][:], frames[:n])


# -- scalar datasets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r", "r+", "a"])
@pytest.mark.parametrize("what", ["scalar", "empty"])
def test_scalar_dataset_is_a_clear_error_in_every_mode(tmp_path, mode, what):
    """A scalar or null-dataspace dataset is refused by name in r, r+ and a (by path or handle); 'w-' says it
    exists and 'w' replaces it."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["s"] = 3.0 if what == "scalar" else h5py.Empty("f4")
    word = "a scalar" if what == "scalar" else r"empty \(no dataspace\)"
    with pytest.raises(ChunkShapeError, match=rf"dataset '/s' in .*s.h5' is {word}; a stream needs shape \(T"):
        HDF5Stream(f"{path}:/s", mode)
    with h5py.File(path, "r" if mode == "r" else "r+") as f, pytest.raises(ChunkShapeError, match=word):
        HDF5Stream(f["s"], mode)
    with pytest.raises(OutputExistsError, match="already exists"):
        HDF5Stream(f"{path}:/s", "w-")


def test_w_replaces_a_scalar_dataset(tmp_path):
    """Mode 'w' replaces a scalar dataset with a time series."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["s"] = 3.0
    with HDF5Stream(f"{path}:/s", "w") as out:
        out.put(np.ones((2, 3), dtype=np.float32))
    with h5py.File(path, "r") as f:
        assert f["s"].shape == (2, 3)


def test_location_and_resizable(tmp_path):
    """location is (real file path, absolute dataset path), also before a lazy dataset exists; resizable says
    whether a writer can grow."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    spec = f"{tmp_path / 'link' / 'o.h5'}:/g/y"
    with HDF5Stream(spec, "w-") as out:
        assert out.location == (str(real / "o.h5"), "/g/y")
        assert out.resizable and out.dataset is None
        out.put(np.ones((2, 3), dtype=np.float32))
        assert out.location == (str(real / "o.h5"), "/g/y")
    with h5py.File(real / "o.h5", "a") as f:
        f.create_dataset("fixed", shape=(4, 3), dtype="f4")
        group = f["g"]
        assert HDF5Stream(group, "a", name="../z").location == (str(real / "o.h5"), "/z")
        assert not HDF5Stream(f["fixed"], "r+").resizable
    with HDF5Stream(spec) as s:
        assert not s.resizable and not s.in_memory and s.result() is s


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_append_from_inside_a_chunk(tmp_path, compression):
    """'a' on a dataset whose length is not a whole number of chunks: ragged puts complete that chunk first,
    compressed or not, and every frame lands in order."""
    path = tmp_path / "o.h5"
    frames = indexed(0, 50, (3, 2))
    with h5py.File(path, "w") as f:
        f.create_dataset("y", data=frames[:5], chunks=(4, 3, 2), maxshape=(None, 3, 2), compression=compression)
    with HDF5Stream(f"{path}:/y", "a") as out:
        for t0, t1 in ((5, 6), (6, 15), (15, 16), (16, 50)):
            out.put(frames[t0:t1])
        assert len(out) == 50
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["y"][:], frames)

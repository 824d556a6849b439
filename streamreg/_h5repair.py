"""Clear the consistency flags that a killed HDF5 writer leaves in a file's superblock.

A file written with ``libver="latest"`` has a version 3 superblock whose
*file consistency flags* byte records that a process has the file open for
writing (bit 0) and, once ``File.swmr_mode`` is switched on, for SWMR writing
(bit 2).  HDF5 sets the bits when the writer opens the file and clears them
when it closes it.  A writer that never closes it -- killed with ``SIGKILL``,
out of memory, power cut -- leaves them set, and from then on HDF5 refuses to
open the file in mode ``"r"``, ``"r+"`` or ``"a"`` (file locking or not) with
*"file is already open for write/SWMR write (may use <h5clear file> to clear
file consistency flags)"*.  Only a SWMR reader still gets in.  HDF5's own fix,
``h5clear -s``, is a command-line tool that is often not installed, and the
file-access property it sets is private, so h5py cannot reach it.

:func:`clear_status_flags` does the same thing in pure Python, and one more
that a killed SWMR writer needs.  Such a writer rewrites the superblock, and
with it the stored end-of-file address (EOA), only when the whole file is
flushed (``File.flush`` or close), not on ``Dataset.flush``.  After the kill
the stored EOA is therefore usually the value from when SWMR mode began, and
every chunk and index block appended since lies beyond it.  With only the
flags cleared, HDF5 opens the file but reading those objects fails with
*"addr overflow"*, and a file opened ``"r+"`` is cut back to the stale EOA
when it closes, losing everything appended.  So the stored EOA is also raised
to cover every byte on disk (what ``h5clear --increment=0`` does).  A stored
EOA *beyond* the end of the file means the file was truncated; nothing can
restore the missing bytes and the file is left alone.

Every change is checked before it is made: the superblock must be found where
HDF5 looks for it, be a version this module understands, and carry a correct
checksum; otherwise :class:`OSError` is raised and nothing is written.

The caller must make sure that no live process is writing the file.  A SWMR
writer holds no file lock once SWMR mode is on, so neither HDF5 nor this
module can tell a live writer from a dead one, and clearing the flags under a
live writer lets a second writer in to corrupt the file.
"""

from __future__ import annotations

import os
from typing import BinaryIO, NamedTuple

__all__ = ["clear_status_flags", "read_status_flags", "superblock_version"]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FIRST_PROBE = 512  # after offset 0, HDF5 looks at 512, 1024, 2048, ...
_FIXED_SIZE = 12  # signature, version, size of offsets, size of lengths, flags
_FLAGS_AT = 11
_CHECKSUM_SIZE = 4
_ADDRESSES = 4  # base, superblock extension, end of file, root object header
_EOF_FIELD = 2  # index of the end-of-file address among the four
_ADDRESS_SIZES = frozenset({2, 4, 8, 16, 32})  # the sizes HDF5 accepts
_UNDERSTOOD_VERSIONS = frozenset({0, 1, 2, 3})
_MASK32 = 0xFFFFFFFF


class _Superblock(NamedTuple):
    """A superblock as found in a file."""

    offset: int
    """Byte offset of the signature in the file."""
    raw: bytes
    """The superblock's bytes; for version 2 and 3 all of them, checksum included."""

    @property
    def version(self) -> int:
        """Superblock format version."""
        return self.raw[len(_SIGNATURE)]


def _rot(x: int, k: int) -> int:
    """Rotate the 32-bit word ``x`` left by ``k`` bits."""
    return ((x << k) | (x >> (32 - k))) & _MASK32


def _step(x: int, y: int, z: int, k: int) -> tuple[int, int]:
    """One line of lookup3's ``mix()``: ``x -= y; x ^= rot(y, k); y += z``."""
    return ((x - y) & _MASK32) ^ _rot(y, k), (y + z) & _MASK32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """Lookup3's ``mix()``: stir three 32-bit words reversibly."""
    a, c = _step(a, c, b, 4)
    b, a = _step(b, a, c, 6)
    c, b = _step(c, b, a, 8)
    a, c = _step(a, c, b, 16)
    b, a = _step(b, a, c, 19)
    c, b = _step(c, b, a, 4)
    return a, b, c


def _fold(x: int, y: int, k: int) -> int:
    """One line of lookup3's ``final()``: ``x ^= y; x -= rot(y, k)``."""
    return ((x ^ y) - _rot(y, k)) & _MASK32


def _final(a: int, b: int, c: int) -> int:
    """Lookup3's ``final()``: the last mixing of three words; returns ``c``."""
    c = _fold(c, b, 14)
    a = _fold(a, c, 11)
    b = _fold(b, a, 25)
    c = _fold(c, b, 16)
    a = _fold(a, c, 4)
    b = _fold(b, a, 14)
    return _fold(c, b, 24)


def _words(block: bytes) -> tuple[int, int, int]:
    """The three little-endian 32-bit words of a 12-byte block."""
    return (
        int.from_bytes(block[0:4], "little"),
        int.from_bytes(block[4:8], "little"),
        int.from_bytes(block[8:12], "little"),
    )


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, as HDF5's ``H5_checksum_lookup3``.

    Parameters
    ----------
    data : bytes
        The bytes to hash.
    initval : int, optional
        Seed; HDF5's metadata checksums use 0.

    Returns
    -------
    int
        The 32-bit hash.

    Examples
    --------
    The reference values printed by ``lookup3.c``'s own self-test:

    >>> hex(_lookup3(b""))
    '0xdeadbeef'
    >>> hex(_lookup3(b"Four score and seven years ago"))
    '0x17770551'
    >>> hex(_lookup3(b"Four score and seven years ago", 1))
    '0xcd628161'
    """
    a = b = c = (0xDEADBEEF + len(data) + initval) & _MASK32
    end = len(data)
    start = 0
    while end - start > 12:
        x, y, z = _words(data[start : start + 12])
        a, b, c = _mix((a + x) & _MASK32, (b + y) & _MASK32, (c + z) & _MASK32)
        start += 12
    if start == end:
        return c
    x, y, z = _words(data[start:].ljust(12, b"\0"))
    return _final((a + x) & _MASK32, (b + y) & _MASK32, (c + z) & _MASK32)


def _locate(fh: BinaryIO, size: int, path: str) -> int:
    """Offset of the superblock signature: 0, then 512, 1024, 2048, ... as HDF5 searches."""
    offset = 0
    while offset + len(_SIGNATURE) <= size:
        fh.seek(offset)
        if fh.read(len(_SIGNATURE)) == _SIGNATURE:
            return offset
        offset = max(_FIRST_PROBE, 2 * offset)
    msg = f"{path} is not an HDF5 file: no superblock signature found."
    raise OSError(msg)


def _superblock_size(fixed: bytes) -> int:
    """Total size of a version 2/3 superblock, from its fixed-size part."""
    return _FIXED_SIZE + _ADDRESSES * fixed[len(_SIGNATURE) + 1] + _CHECKSUM_SIZE


def _check_fixed(fixed: bytes, path: str) -> None:
    """Refuse a superblock whose version or field sizes HDF5 would not accept."""
    version, sizeof_addr, sizeof_size = fixed[len(_SIGNATURE) : len(_SIGNATURE) + 3]
    if version not in _UNDERSTOOD_VERSIONS:
        msg = f"{path}: superblock version {version} is not understood; the file is left unchanged."
        raise OSError(msg)
    if version >= 2 and not {sizeof_addr, sizeof_size} <= _ADDRESS_SIZES:
        msg = f"{path}: superblock gives invalid address/length sizes {sizeof_addr}/{sizeof_size}."
        raise OSError(msg)


def _read_superblock(fh: BinaryIO, path: str) -> _Superblock:
    """Find and read the superblock of the open file ``fh``; its checksum is not yet checked."""
    offset = _locate(fh, os.fstat(fh.fileno()).st_size, path)
    fh.seek(offset)
    fixed = fh.read(_FIXED_SIZE)
    if len(fixed) < _FIXED_SIZE:
        msg = f"{path}: the superblock is cut short."
        raise OSError(msg)
    _check_fixed(fixed, path)
    if fixed[len(_SIGNATURE)] < 2:
        return _Superblock(offset, fixed)
    rest = fh.read(_superblock_size(fixed) - _FIXED_SIZE)
    if len(rest) < _superblock_size(fixed) - _FIXED_SIZE:
        msg = f"{path}: the superblock is cut short."
        raise OSError(msg)
    return _Superblock(offset, fixed + rest)


def _verify_checksum(sb: _Superblock, path: str) -> None:
    """Raise unless a version 2/3 superblock's stored checksum matches its bytes."""
    stored = int.from_bytes(sb.raw[-_CHECKSUM_SIZE:], "little")
    computed = _lookup3(sb.raw[:-_CHECKSUM_SIZE])
    if stored != computed:
        msg = (
            f"{path}: superblock checksum mismatch (stored {stored:#010x}, computed {computed:#010x}); "
            "the file is left unchanged."
        )
        raise OSError(msg)


def _address(sb: _Superblock, index: int) -> int:
    """The ``index``-th address field (0 base, 1 extension, 2 end of file, 3 root) of a v2/v3 superblock."""
    width = sb.raw[len(_SIGNATURE) + 1]
    start = _FIXED_SIZE + index * width
    return int.from_bytes(sb.raw[start : start + width], "little")


def _repaired_eof(sb: _Superblock, size: int, path: str) -> int:
    """The stored end-of-file address that covers all ``size`` bytes of the file.

    The stored address counts from the stored base address, which HDF5 places
    at the superblock (after any user block), so the byte it points at is
    ``offset + eof - base``.  Raises if that lies beyond the file's end.
    """
    base, eof = _address(sb, 0), _address(sb, _EOF_FIELD)
    width = sb.raw[len(_SIGNATURE) + 1]
    undefined = (1 << (8 * width)) - 1
    end = sb.offset + eof - base
    if eof == undefined or base > eof or end > size:
        msg = (
            f"{path}: the superblock says the file ends at byte {end} but it holds {size} bytes; "
            "it looks truncated and is left unchanged."
        )
        raise OSError(msg)
    repaired = eof + (size - end)
    if repaired >= undefined:
        msg = f"{path}: {size} bytes do not fit the superblock's {width}-byte addresses."
        raise OSError(msg)
    return repaired


def _cleared(sb: _Superblock, eof: int) -> bytes:
    """The superblock with zero status flags, end-of-file address ``eof`` and a fresh checksum."""
    width = sb.raw[len(_SIGNATURE) + 1]
    eof_at = _FIXED_SIZE + _EOF_FIELD * width
    body = bytearray(sb.raw[:-_CHECKSUM_SIZE])
    body[_FLAGS_AT] = 0
    body[eof_at : eof_at + width] = eof.to_bytes(width, "little")
    return bytes(body) + _lookup3(bytes(body)).to_bytes(_CHECKSUM_SIZE, "little")


def superblock_version(path: str | os.PathLike[str]) -> int:
    """Superblock version of an HDF5 file: 3 for ``libver="latest"``, which SWMR needs; 0 if unreadable."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return _read_superblock(fh, name).version
    except OSError:
        return 0


def read_status_flags(path: str | os.PathLike[str]) -> int:
    """Return the file consistency flags of an HDF5 file's superblock.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.

    Returns
    -------
    int
        The flags byte of a version 2 or 3 superblock: bit 0 set while a
        process has the file open for writing, bit 2 while it writes in SWMR
        mode.  0 for version 0 and 1 superblocks, which HDF5 never marks.

    Raises
    ------
    OSError
        If the file cannot be read, is not an HDF5 file, or its superblock is
        of an unknown version or fails its checksum.
    """
    name = os.fspath(path)
    with open(name, "rb") as fh:
        sb = _read_superblock(fh, name)
    if sb.version < 2:
        return 0
    _verify_checksum(sb, name)
    return sb.raw[_FLAGS_AT]


def clear_status_flags(path: str | os.PathLike[str]) -> bool:
    """Clear the consistency flags a killed writer left in an HDF5 file, as ``h5clear -s``.

    When the flags of a version 2/3 superblock are set, they are zeroed, the
    stored end-of-file address is raised to the file's size if it is smaller
    (a killed SWMR writer leaves it stale), and the superblock checksum is
    rewritten.  The superblock is changed in place and fsync'ed.  The caller
    must make sure that no live process has the file open for writing.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.

    Returns
    -------
    bool
        True if the file was changed; False if it needed nothing (flags
        already clear, or a version 0/1 superblock, which has none).

    Raises
    ------
    OSError
        If the file cannot be opened for writing, is not an HDF5 file, has a
        superblock of an unknown version or with a wrong checksum, or looks
        truncated (stored end-of-file address beyond its end).  Nothing is
        written then.
    """
    name = os.fspath(path)
    with open(name, "r+b") as fh:
        sb = _read_superblock(fh, name)
        if sb.version < 2:
            return False
        _verify_checksum(sb, name)
        if sb.raw[_FLAGS_AT] == 0:
            return False
        new = _cleared(sb, _repaired_eof(sb, os.fstat(fh.fileno()).st_size, name))
        fh.seek(sb.offset)
        fh.write(new)
        fh.flush()
        os.fsync(fh.fileno())
    return True

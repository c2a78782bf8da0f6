"""Reading an .npz archive of plain arrays without trusting anything in it.

``np.load`` trusts the file: a damaged ``.npy`` header reaches ``ast.literal_eval``
(``tokenize.TokenError``, deep recursion), a declared shape is believed before any data
is read, a deflated member may expand a thousandfold, and a member that is not ``.npy``
comes back as something else.  Here every member must be a stored (uncompressed) ``.npy``
of a plain numeric, boolean or fixed-width string dtype, its header is matched against
one fixed pattern (never evaluated), and its declared size must equal the bytes really
in the archive, which must lie inside the file, before a single byte of data is read.
So no allocation is larger than the file, and nothing in a file can run code.
"""
import re
import struct
import zipfile

import numpy as np

MAX_MEMBERS = 64            # fastbp writes at most 9
MAX_NPY_HEADER = 10000      # numpy's own default limit on a header's length
MAX_NDIM = 8
MAX_DIM = 1 << 40           # a dimension of 0 would let any other one through the size check
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.npy\Z")
# what numpy writes (keys sorted, then padding to a multiple of 64 bytes and a newline)
_HEADER = re.compile(r"\{'descr': '([<>|=][a-zA-Z][0-9]{0,6})', 'fortran_order': (True|False), "
                     r"'shape': \(([0-9, ]{0,200})\), \} *\n\Z")
# plain kinds only: b(ool), i(nt), u(int), f(loat), U (unicode) and S (bytes) of a sane width
_DTYPE = re.compile(r"[<>|=](b1|[iu][1248]|f[248]|U[1-9][0-9]{0,3}|S[1-9][0-9]{0,4})\Z")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               NotImplementedError, OverflowError, IndexError, KeyError, RuntimeError,
               UnicodeDecodeError, struct.error)


class DamagedArchive(ValueError):
    """The archive is not a readable archive of plain .npy arrays; the message says why."""


class Member:
    """A member's declared array, checked against the bytes the archive holds for it."""

    def __init__(self, info, dtype, shape, fortran, offset):
        self.info, self.dtype, self.shape, self.fortran, self.offset = info, dtype, shape, fortran, offset

    @property
    def nbytes(self):
        return self.info.file_size - self.offset


def _parse_npy_header(name, head, size):
    """(dtype, shape, fortran_order, data offset) of an .npy member of `size` bytes whose
    first bytes are `head`, every field checked before anything is allocated."""
    if len(head) < 10 or head[:6] != b"\x93NUMPY":
        raise DamagedArchive(f"member {name!r} is not an .npy array (no .npy magic)")
    major = head[6]
    if major == 1:
        n, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        n, start = int.from_bytes(head[8:12], "little"), 12
    else:
        raise DamagedArchive(f"member {name!r} has an unknown .npy version {major}")
    if n > MAX_NPY_HEADER or start + n > len(head):
        raise DamagedArchive(f"member {name!r} has an .npy header of {n} bytes, more than the "
                             f"{min(MAX_NPY_HEADER, max(len(head) - start, 0))} there are")
    try:
        text = head[start:start + n].decode("latin1" if major < 3 else "utf-8")
    except UnicodeDecodeError:
        raise DamagedArchive(f"member {name!r} has an .npy header that is not text") from None
    m = _HEADER.match(text)
    if m is None:
        raise DamagedArchive(f"member {name!r} has a damaged .npy header {text[:80]!r}")
    descr, fortran, shape_text = m.groups()
    if not _DTYPE.match(descr):
        raise DamagedArchive(f"member {name!r} has dtype {descr!r}; model files hold only "
                             "plain numbers, booleans and fixed-width strings (no objects)")
    dims = [d.strip() for d in shape_text.split(",")]
    if dims and dims[-1] == "":
        dims.pop()
    if any(not d.isdigit() for d in dims) or len(dims) > MAX_NDIM:
        raise DamagedArchive(f"member {name!r} has an invalid shape ({shape_text})")
    shape = tuple(int(d) for d in dims)
    if any(d > MAX_DIM for d in shape):
        raise DamagedArchive(f"member {name!r} has a dimension over {MAX_DIM} in shape {shape}")
    dtype = np.dtype(descr)
    count = 1
    for d in shape:
        count *= d
    offset = start + n
    if count * dtype.itemsize != size - offset:   # Python integers: no overflow
        raise DamagedArchive(f"member {name!r} declares shape {shape} of {descr} "
                             f"({count * dtype.itemsize} bytes) but holds {size - offset} bytes")
    return dtype, shape, fortran == "True", offset


def open_archive(f, file_size):
    """(ZipFile, {array name: Member}) for the archive open as binary file f."""
    try:
        z = zipfile.ZipFile(f)
    except _ZIP_ERRORS as exc:
        raise DamagedArchive(f"not a readable zip archive ({exc})") from None
    try:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise DamagedArchive(f"{len(infos)} members, more than a model file has ({MAX_MEMBERS})")
        members, total = {}, 0
        for info in infos:
            name = info.filename
            if not _NAME.match(name):
                raise DamagedArchive(f"member {name[:80]!r} is not an .npy array")
            key = name[:-4]
            if key in members:
                raise DamagedArchive(f"member {name!r} appears twice")
            if info.compress_type != zipfile.ZIP_STORED:
                raise DamagedArchive(f"member {name!r} is compressed (method "
                                     f"{info.compress_type}); model files are stored uncompressed")
            if info.flag_bits & 0x1:
                raise DamagedArchive(f"member {name!r} is encrypted")
            total += info.file_size
            if (info.file_size != info.compress_size or total > file_size
                    or info.header_offset + info.compress_size > file_size):
                raise DamagedArchive(f"member {name!r} declares {info.file_size} bytes, more "
                                     f"than the file of {file_size} bytes can hold")
            with z.open(info) as m:
                head = m.read(min(info.file_size, 12 + MAX_NPY_HEADER))
            members[key] = Member(info, *_parse_npy_header(name, head, info.file_size))
        return z, members
    except BaseException as exc:
        z.close()
        if isinstance(exc, _ZIP_ERRORS) and not isinstance(exc, DamagedArchive):
            raise DamagedArchive(f"damaged zip archive ({exc})") from None
        raise


def read_member(z, member):
    """The array of a member whose sizes open_archive checked; its CRC is verified."""
    try:
        with z.open(member.info) as m:
            m.read(member.offset)
            data = bytearray(m.read(member.nbytes))
            if len(data) != member.nbytes or m.read(1):
                raise DamagedArchive(f"member {member.info.filename!r} is truncated")
    except _ZIP_ERRORS as exc:
        if isinstance(exc, DamagedArchive):
            raise
        raise DamagedArchive(f"member {member.info.filename!r} is damaged ({exc})") from None
    a = np.frombuffer(data, dtype=member.dtype)
    return a.reshape(member.shape, order="F" if member.fortran else "C")

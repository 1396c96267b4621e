"""A cache of compiled seccomp filters: podman sends the same profile for every container, and libseccomp's
BPF export of it is most of a compile (~25 ms, with pyseccomp's import ~8 ms more). A hit needs neither.

Keyed by the sha256 of the seccomp section (canonical JSON), the machine's architecture, libseccomp's version
and the source of lower_seccomp.py (what turns the section into rules), so any of those changing is a miss.
Trust: the directory and the file must be root's, neither writable by group or others (the file 0600), both
opened with O_NOFOLLOW, and the file's content must carry its key and the sha256 of its payload, checked
before use. Anything else is refused: the filter is compiled as without a cache, and the plan says why
(a note, never an error). The directory: $MRUNC_SECCOMP_CACHE, or /var/cache/mrunc/seccomp; "off" disables it.
Standard library only (and _ctypes to ask libseccomp its version): a hit never imports pyseccomp.
"""

import errno
import os
import stat

from mrunc.executor import jsontext  # not json, which imports re and enum (~8 ms of a compile)
from mrunc.executor.plan import sha256_hex  # not hashlib, whose OpenSSL costs ms to load

ENV = "MRUNC_SECCOMP_CACHE"
DEFAULT_DIR = "/var/cache/mrunc/seccomp"
MAGIC = b"mrunc seccomp cache 1\n"
SONAME = "libseccomp.so.2"
FIELDS = ("bpf", "flags", "pfc")  # compile_filter's result


class Untrusted(Exception):
    """Why a cache directory or file was not used."""


class Lookup:
    """What the cache holds for a profile (a plain class: dataclasses' import alone is ~10 ms of a compile)."""

    def __init__(self, key: str | None) -> None:
        self.key = key  # the entry's name (hex sha256); None: no cache
        self.filter: dict | None = None  # the seccomp_load arguments, on a hit
        self.refused: str | None = None  # why an entry or the directory was not trusted, for the plan's notes


def directory() -> str | None:
    """The cache directory; None when off, and for a compile not run as root, which could neither trust root's
    files for what they are nor leave files root could trust."""
    path = os.environ.get(ENV, DEFAULT_DIR)
    return None if path in ("", "off") or os.geteuid() != 0 else path


def key(seccomp: dict, arch: str | None = None, libseccomp: str | None = None) -> str:
    section = jsontext.dumps(_sorted(seccomp)).encode()  # canonical: keys sorted, json.dumps' spacing, ASCII
    parts = [sha256_hex(section), arch or os.uname().machine, libseccomp or libseccomp_version(),
             _lowering_digest()]
    return sha256_hex(" ".join(parts).encode())


def lookup(seccomp: dict) -> Lookup:
    where = directory()
    if where is None:
        return Lookup(None)
    try:
        entry = Lookup(key(seccomp))
    except OSError:  # no libseccomp to ask its version: compiling will say what is missing
        return Lookup(None)
    try:
        entry.filter = _read(where, entry.key)
    except FileNotFoundError:  # a miss (or no directory yet)
        pass
    except (Untrusted, OSError, ValueError) as e:  # ValueError: a payload that is not JSON
        entry.refused = f"{os.path.join(where, entry.key)}: {e}"
    return entry


def store(entry: Lookup, compiled: dict) -> None:
    """Write the entry: into a new file, renamed over the old name (a reader sees the old file or the new one,
    never half of one; a symlink there is replaced, not followed). Failing to write is not an error: the next
    compile compiles again."""
    where = directory()
    if where is None or entry.key is None:
        return
    try:
        _makedirs(where)
        dfd = _open_dir(where)
    except (Untrusted, OSError):
        return
    try:
        _write(dfd, entry.key, compiled)
    except OSError:
        pass
    finally:
        os.close(dfd)


def encode(name: str, compiled: dict) -> bytes:
    payload = jsontext.dumps({k: compiled[k] for k in FIELDS}).encode()
    return MAGIC + f"{name}\n{sha256_hex(payload)}\n".encode() + payload


def decode(name: str, data: bytes) -> dict:
    """The payload of a cache file, once its header names this entry and its digest matches."""
    if not data.startswith(MAGIC):
        raise Untrusted("not a cache file of this format")
    head, _, rest = data[len(MAGIC):].partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    if head.decode(errors="replace") != name:
        raise Untrusted("holds another entry")
    if sha256_hex(payload) != digest.decode(errors="replace"):
        raise Untrusted("content does not match its sha256 (truncated or altered)")
    compiled = jsontext.loads(payload)
    if not isinstance(compiled, dict) or set(compiled) != set(FIELDS):
        raise Untrusted("payload is not a seccomp filter")
    return compiled


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _read(where: str, name: str) -> dict:
    dfd = _open_dir(where)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise Untrusted("is a symlink") from None
        raise
    finally:
        os.close(dfd)
    with open(fd, "rb") as f:
        _check_owner(os.fstat(fd), stat.S_ISREG, "a regular file", 0o077, "0600")
        return decode(name, f.read())


def _open_dir(where: str) -> int:
    try:
        dfd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symlink, or O_DIRECTORY something else
            raise Untrusted("directory is a symlink or not a directory") from None
        raise
    try:
        _check_owner(os.fstat(dfd), stat.S_ISDIR, "a directory", 0o022, "writable by root alone", what="directory")
    except Untrusted:
        os.close(dfd)
        raise
    return dfd


def _check_owner(st: os.stat_result, kind, kind_name: str, forbidden: int, allowed: str, what: str = "file") -> None:
    if not kind(st.st_mode):
        raise Untrusted(f"{what} is not {kind_name}")
    if st.st_uid != 0:
        raise Untrusted(f"{what} owned by uid {st.st_uid}, not root")
    if st.st_mode & forbidden:
        raise Untrusted(f"{what} mode {stat.S_IMODE(st.st_mode):04o}; allowed: {allowed}")


def _makedirs(where: str) -> None:
    parent = os.path.dirname(where.rstrip("/"))
    if parent:
        os.makedirs(parent, mode=0o755, exist_ok=True)
    try:
        os.mkdir(where, 0o700)
    except FileExistsError:
        pass


def _write(dfd: int, name: str, compiled: dict) -> None:
    temporary = f".{name}.{os.getpid()}"
    try:
        os.unlink(temporary, dir_fd=dfd)  # left by a process of this pid killed while writing
    except FileNotFoundError:
        pass
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dfd)
    try:
        with open(fd, "wb") as f:
            os.fchmod(fd, 0o600)  # whatever the umask
            f.write(encode(name, compiled))
        os.rename(temporary, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        os.unlink(temporary, dir_fd=dfd)
        raise


def libseccomp_version() -> str:
    """libseccomp's own seccomp_version(), through _ctypes (the ctypes package costs ~2 ms to import)."""
    import _ctypes

    class UInt(_ctypes._SimpleCData):
        _type_ = "I"

    class Pointer(_ctypes._SimpleCData):
        _type_ = "P"

    class Version(_ctypes.Array):  # struct scmp_version {unsigned int major, minor, micro}
        _type_ = UInt
        _length_ = 3

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Pointer

    class Library:
        _handle = _ctypes.dlopen(SONAME, _ctypes.RTLD_LOCAL)

    return ".".join(map(str, Version.from_address(Function(("seccomp_version", Library()))())))


def _lowering_digest() -> str:
    with open(os.path.join(os.path.dirname(__file__), "lower_seccomp.py"), "rb") as f:
        return sha256_hex(f.read())

"""Reading and writing the files fuzzrmap makes: seed files and exports.

Everything fuzzrmap writes goes through :func:`write_text`: a temporary file
beside the target, flushed to disk, then renamed over it (or, for names the
tool chose itself, linked to a name nobody holds yet), so an interrupted,
killed or out-of-space run leaves either the old file or the new one, never
half of one.  One permission policy: new files get what the user's umask
allows, like any file the user writes.

Everything fuzzrmap reads from a user goes through :func:`read_text`: a
regular file of bounded size only, so that a symlink to ``/dev/zero`` or a
FIFO is refused instead of read for ever.  :func:`shown` quotes text that came
from a file before it reaches a message, so that a path or a field cannot span
lines or smuggle terminal escapes.

Left out: locking against concurrent writers of the same name (the last
rename wins, each result stays whole).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

#: the largest seed file read (a schedule of 5000 steps takes about 1 MB)
MAX_READ = 16 * 1024 * 1024


class FileError(Exception):
    """A path that cannot be read as asked: its message is one line."""


def shown(text: str, limit: int = 120) -> str:
    """``text`` as it may appear in a one-line message: as is when plain, else quoted with escapes."""
    if text.isprintable() and len(text) <= limit and text.strip() == text and text:
        return text
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def read_text(path: Path, what: str) -> str:
    """The contents of a regular file of at most :data:`MAX_READ` bytes, as UTF-8.

    Raises :class:`FileError` (naming the file as ``what``) for a missing
    path, a non-regular file (directory, FIFO, device), a larger file or
    undecodable bytes.  The file is opened non-blocking and checked after
    opening, so a FIFO cannot stall the read.
    """
    name = shown(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileError(f"{name}: no such {what}") from None
    except OSError as e:
        raise FileError(f"{name}: cannot read {what} ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise FileError(f"{name}: cannot read {what} ({kind})")
        try:
            data = f.read(MAX_READ + 1)
        except OSError as e:
            raise FileError(f"{name}: cannot read {what} ({e.strerror or e})") from None
    if len(data) > MAX_READ:
        raise FileError(f"{name}: cannot read {what} (larger than {MAX_READ // (1024 * 1024)} MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileError(f"{name}: cannot read {what} (not UTF-8: {e.reason} at byte {e.start})") from None


def write_text(text: str, path: Path, replace: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically; return the path written.

    With ``replace=False`` an existing file is never overwritten: if it holds
    the same text it is kept, else the first free name ``STEM-2.EXT``,
    ``STEM-3.EXT``... is used.  The directory must exist.  Raises
    :class:`OSError` on failure, after removing the temporary file.
    """
    path = Path(path)
    data = text.encode("utf-8")
    tmp = _temporary(path.parent, path.name, data)
    try:
        if replace:
            os.replace(tmp, path)
            return path
        for n in range(1, 10_000):
            candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
            try:
                os.link(tmp, candidate)
                return candidate
            except FileExistsError:
                if _holds(candidate, data):
                    return candidate
        raise FileExistsError(f"no free name for {path}")
    finally:
        tmp.unlink(missing_ok=True)


def _temporary(directory: Path, name: str, data: bytes) -> Path:
    """A new file in ``directory`` holding ``data``, created with mode 0666 less the umask."""
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def check_writable_dir(directory: Path) -> None:
    """Create ``directory`` if needed and check that files can be made in it; raise :class:`FileError`."""
    name = shown(str(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = _temporary(directory, "probe", b"")
        probe.unlink()
    except OSError as e:
        raise FileError(f"cannot write to {name}: {e.strerror or e}") from None

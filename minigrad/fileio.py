"""Writing files safely: every file minigrad and minigpt write goes through here.

``atomic_write(path, data)`` replaces ``path`` with a file holding ``data``, all or nothing:

* the data goes to a temp file in the same folder (``.<name>.<host>-<pid>-<random>.tmp``),
  is flushed and fsynced, then renamed over ``path`` (and the folder fsynced), so a crash or
  a kill leaves either the old file or the new one, never a mix;
* the new file gets the mode ``open()`` would give it: ``0o666`` minus the umask (the temp
  file is created with ``os.open(..., 0o666)``, so the kernel applies the umask and any
  default ACL) -- not ``mkstemp``'s ``0o600``. A file that is being replaced keeps its
  permission bits (setuid, setgid and sticky bits are not carried over);
* a symbolic link at ``path`` is replaced by the new file: the link goes, the file it
  pointed to is left untouched (``rename`` replaces the link itself). Nothing is ever
  written through a link that someone planted where an output goes;
* temp files of this pattern that a killed writer left in the same folder are removed:
  only files that match the pattern exactly, are owned by this user, were last modified more
  than ``STALE_AFTER_S`` seconds ago and, when written on this host, whose writer (the pid
  in the name) is no longer running.

``open_append(path)`` opens a log (CSV) for appending without following a symbolic link
(``O_NOFOLLOW``): a link, a FIFO or anything but a regular file there is an
``OutputPathError``, so an append never writes through a planted link either.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import stat
import time
import zlib
from pathlib import Path

from .errors import OutputPathError

STALE_AFTER_S = 15 * 60     # a temp file untouched this long, by a writer that is gone: stale
_HOST = f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-z]{8}\.tmp")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the open file (a seam the tests use to simulate a crash)."""
    f.write(data)


def _temp_name(path: Path) -> str:
    stem = os.fsdecode(os.fsencode(path.name)[:100])   # fits the 255-byte name limit
    return f".{stem}.{_HOST}-{os.getpid()}-{os.urandom(4).hex()}.tmp"


def _mode_to_keep(path: Path) -> int | None:
    """The permission bits of the regular file at ``path`` (not following a link), or None."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None


def _pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False       # alive under another user, or no way to tell: keep the file
    return False


def remove_stale_temps(folder, now: float | None = None) -> list[str]:
    """Remove the temp files that killed writers left in ``folder`` (see the module
    docstring for which ones count as stale); returns their names. Never raises."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (uid is not None and st.st_uid != uid):
                continue
            if now - st.st_mtime < STALE_AFTER_S:
                continue
            if m["host"] == _HOST and not _pid_is_gone(int(m["pid"])):
                continue
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


def atomic_write(path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically (see the module docstring:
    the umask or the replaced file's mode, a symbolic link replaced rather than followed,
    stale temp files cleaned up). Every file the two packages write goes through here."""
    path = Path(path)
    remove_stale_temps(path.parent)
    mode = _mode_to_keep(path)
    tmp = path.parent / _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), mode)
                else:      # pragma: no cover - Windows
                    os.chmod(tmp, mode)
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX; best effort elsewhere)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def open_append(path, encoding: str = "utf-8"):
    """``path`` opened for appending text (created with the umask's mode when missing), never
    through a symbolic link: a link, FIFO, device or folder there is an OutputPathError.
    Use ``f.tell() == 0`` to see whether the file is new (empty)."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | \
        getattr(os, "O_NONBLOCK", 0)       # a FIFO must not block the open
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR) or \
                os.path.islink(path):
            raise OutputPathError(errno.ELOOP, f"refusing to append to {str(path)!r}: it is "
                                  "a symbolic link or not a regular file (remove it, or "
                                  "write the run to another folder)", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputPathError(errno.EINVAL, f"refusing to append to {str(path)!r}: it is "
                                  "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "a", encoding=encoding, newline="")
    except BaseException:
        os.close(fd)
        raise
    f.seek(0, os.SEEK_END)
    return f


__all__ = ["atomic_write", "open_append", "remove_stale_temps", "STALE_AFTER_S"]

"""Token and profile files read safely: a size cap, opened without blocking, regular files only."""

from __future__ import annotations

import errno
import os
import stat

from airflow_provider_modelreg.credentials.base.flows import CredentialSourceError
from airflow_provider_modelreg.credentials.base.secrets import mask_derived

TOKEN_FILE_CAP = 64 * 1024


class FileRefused(Exception):
    """A credential file that is no regular file, or is larger than its cap."""


def read_small_file(path: str, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes, opened without blocking.

    The open is non-blocking (``O_NONBLOCK``: a FIFO without a writer does not hang it) and the file must be a
    regular file (``fstat``): FIFOs, sockets and devices (``/dev/zero``) are refused; at most ``cap + 1`` bytes are
    ever read. Call it off the event loop.

    :raises OSError: the file cannot be opened (missing, no permission).
    :raises FileRefused: not a regular file, or larger than ``cap`` (the message says which).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not a regular file (a FIFO, socket or device?)")
        if info.st_size > cap:
            raise FileRefused(f"larger than {cap} bytes ({info.st_size} bytes)")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            try:
                chunk = os.read(fd, cap + 1 - size)
            except BlockingIOError:  # pragma: no cover - a regular file never blocks
                raise OSError(errno.EAGAIN, "read would block") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise FileRefused(f"larger than {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_token_file(source: str, path: str) -> str:
    """An OIDC token file's stripped content, read afresh (the kubelet rotates it) and masked at once.

    At most :data:`TOKEN_FILE_CAP` bytes of a regular file, opened without blocking (see :func:`read_small_file`).

    :raises CredentialSourceError: the file cannot be read, is no regular file, is too large or is empty (naming
        the source and the path).
    """
    try:
        token = read_small_file(path, TOKEN_FILE_CAP).decode("utf-8").strip()
    except FileRefused as exc:
        raise CredentialSourceError(source, f"OIDC token file refused: {path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialSourceError(source, f"OIDC token file not readable: {path} ({type(exc).__name__})") from None
    if not token:
        raise CredentialSourceError(source, f"OIDC token file is empty: {path}")
    mask_derived(token)
    return token

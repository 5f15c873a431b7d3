"""Content-addressed cache of trained models, samples and features.

Entries are keyed by a hash of everything that determines them (configs, data
fingerprint, code version of the component); writes are atomic (temporary file
plus ``os.replace``); a corrupt or foreign entry is moved aside, never deleted.

Nothing in the cache is pickle. An entry is one ``.safetensors`` file: its
tensors in the safetensors body, everything else (metrics, metadata, the
payload's structure) as JSON in the header (``benchmark.safe_format``). Reading
one cannot run code, so a cache on a shared CI disk is no way into later jobs.
Entries of the pickle format before it (``.pt``) are never read: they are rebuilt.

Builds take a cross-process lock on their key (``filelock``, an OS lock the kernel
drops when its process dies): shards on one machine, xdist workers and two
terminals running ``memobench run`` never build one entry twice. The second one
waits, then reuses what the first stored; a process killed while building leaves
no lock behind, only a lock file the next builder takes at once.

Location: ``--memobench-cache``, else ``$MEMOBENCH_CACHE``, else
``~/.cache/memobench``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from benchmark import safe_format
from benchmark.errors import CacheError
from benchmark.progress import line

log = logging.getLogger("memobench.cache")

FORMAT = 2  # 1: a pickled dict in a .pt file (never read now)


def default_root(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("MEMOBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "memobench"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp_path)`` then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


class Cache:
    """A folder of ``{kind}/{key}.safetensors`` entries, each carrying its own identity."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = default_root(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.safetensors"

    def dir(self, kind: str, key: str) -> Path:
        """A folder for multi-file state (training checkpoints)."""
        return self.root / kind / key

    def lock(self, kind: str, key: str) -> FileLock:
        """The cross-process lock a build of ``key`` holds (``locks/{kind}/{key}.lock``)."""
        path = self.root / "locks" / kind / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path, thread_local=False)

    def save(self, kind: str, key: str, payload: Any, identity: Any = None) -> Path:
        path = self.path(kind, key)
        entry = {
            "memobench_cache": FORMAT,
            "kind": kind,
            "key": key,
            "identity": identity,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "payload": payload,
        }
        try:
            atomic_write(path, lambda tmp: safe_format.save(entry, tmp))
        except safe_format.UnsafeValueError as err:
            raise CacheError(f"cannot store the {kind} entry {key}: {err}") from err
        return path

    def load(self, kind: str, key: str) -> Any | None:
        """The payload stored under ``key``, ``None`` when absent.

        Raises:
            CacheError: the file is truncated/corrupt or was written for another key.
        """
        path = self.path(kind, key)
        if not path.exists():
            return None
        return read_entry(path, kind, key)["payload"]

    def quarantine(self, path: Path) -> Path:
        """Move a bad entry aside (kept for inspection) and return its new path."""
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(path, target)
        return target

    def get_or_create(
        self,
        kind: str,
        key: str,
        build: Callable[[], Any],
        identity: Any = None,
        what: str | None = None,
        validate: Callable[[Any], None] | None = None,
        rebuild: bool = False,
    ) -> tuple[Any, bool]:
        """Load ``key`` or build and store it. Returns ``(payload, reused)``.

        ``validate(payload)`` may raise ``CacheError`` to refuse a loaded entry; a
        refused, corrupt or foreign entry is moved aside and rebuilt. ``rebuild``:
        build and overwrite whatever is stored.
        """
        what = what or kind
        if not rebuild:
            payload = self._load_valid(kind, key, validate, what)
            if payload is not None:
                return payload, True
        lock = self.lock(kind, key)
        waited = False
        try:
            lock.acquire(timeout=0)
        except Timeout:
            line(f"{what} {key}: another process is building it; waiting for its lock")
            log.info("waiting for %s (held by another process building %s)", lock.lock_file, what)
            lock.acquire()
            waited = True
        try:
            # stored between the first look and the lock (or by the process waited for,
            # unless it died or failed: then it is built here)
            if not rebuild or waited:
                payload = self._load_valid(kind, key, validate, what)
                if payload is not None:
                    return payload, True
            payload = build()
            path = self.save(kind, key, payload, identity)
            log.info("built %s %s and cached it at %s", what, key, path)
            return payload, False
        finally:
            lock.release()

    def _load_valid(
        self, kind: str, key: str, validate: Callable[[Any], None] | None, what: str
    ) -> Any | None:
        """The stored payload, or None when absent; a refused, corrupt or foreign entry
        is moved aside (and None returned, so it is rebuilt)."""
        path = self.path(kind, key)
        try:
            payload = self.load(kind, key)
            if payload is not None and validate is not None:
                validate(payload)
        except CacheError as err:
            moved = self.quarantine(path)
            log.warning("%s; moved it to %s and rebuilding", err, moved)
            return None
        if payload is not None:
            log.info("reusing cached %s %s from %s", what, key, path)
        return payload


def read_entry(path: Path, kind: str | None = None, key: str | None = None) -> dict[str, Any]:
    """Read and validate one cache file."""
    try:
        entry = safe_format.load(path)
    except safe_format.ForeignFileError as err:
        raise CacheError(f"cache entry {path} is not a memobench cache file ({err})") from err
    except Exception as err:  # truncated, not safetensors (a pickle), bad header, ...
        raise CacheError(
            f"cache entry {path} is corrupt or truncated ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(entry, dict) or entry.get("memobench_cache") != FORMAT:
        raise CacheError(f"cache entry {path} is not a memobench cache file (format {FORMAT})")
    if key is not None and entry.get("key") != key:
        raise CacheError(
            f"cache entry {path} was written for another config "
            f"(key {entry.get('key')!r}, expected {key!r})"
        )
    if kind is not None and entry.get("kind") != kind:
        raise CacheError(f"cache entry {path} holds a {entry.get('kind')!r}, expected a {kind!r}")
    return entry

"""Model files: XGBoost's own JSON format, written atomically, read back only if intact.

The checksum recorded at save time travels with the version, so a file that was
truncated, overwritten or swapped is refused instead of quietly serving predictions.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a booster is read: the command line starts faster
    import xgboost as xgb

MODEL_SUFFIX = ".json"


class ModelFileError(RuntimeError):
    """A model file is missing, already taken, or not the file that was saved."""


class DamagedChampionError(ModelFileError):
    """The champion's file is missing or altered; the message says the way out."""


class ModelDiskFullError(OSError):
    """The disk that holds the model files is full; nothing of the new file is left."""

    def __init__(self, directory: Path, needed_bytes: int) -> None:
        mount = _mount_point(directory)
        free = shutil.disk_usage(directory).free
        self.message = (
            f"no space left on the disk mounted at {mount} for the model file in {directory} "
            f"({needed_bytes:,} bytes needed, {free:,} free); the partial file was removed. "
            f"Free space on {mount}, or point the model store (CTR_HOME, or the `models` "
            "resource's directory) at a larger disk, then run the check again"
        )
        super().__init__(errno.ENOSPC, self.message)

    def __str__(self) -> str:
        return self.message


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


@dataclass(frozen=True)
class SavedModel:
    path: Path
    sha256: str


def new_version(now: datetime) -> str:
    """A version that sorts by time and is unique enough: `ctr-20261127T062400Z-1a2b3c`."""
    if now.tzinfo is None:
        raise ValueError("new_version needs a timezone-aware datetime, e.g. datetime.now(UTC)")
    return f"ctr-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def save_model(booster: xgb.Booster, directory: Path, version: str) -> SavedModel:
    """Writes `<directory>/<version>.json`; readers see the whole file or none of it.

    On a full disk the temporary file is removed and `ModelDiskFullError` names the disk.
    """
    if not version or Path(version).name != version or version in {".", ".."}:
        raise ValueError(f"a model version must be a plain file name, got {version!r}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{version}{MODEL_SUFFIX}"
    if path.exists():
        raise ModelFileError(f"{path} already exists; model versions are never overwritten")
    content = bytes(booster.save_raw(raw_format="json"))
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{version}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise ModelDiskFullError(directory, len(content)) from error
        raise
    _fsync_directory(directory)
    return SavedModel(path=path, sha256=hashlib.sha256(content).hexdigest())


def verify_model_file(path: Path, sha256: str) -> bytes:
    """The file's bytes, if they are byte for byte the ones that were saved."""
    try:
        content = path.read_bytes()
    except FileNotFoundError as error:
        raise ModelFileError(
            f"model file {path} (sha256 {sha256} when saved) does not exist"
        ) from error
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise ModelFileError(
            f"model file {path} has sha256 {actual} but {sha256} was recorded when it was "
            "saved; the file was changed or replaced, so it will not be loaded"
        )
    return content


def load_model(path: Path, sha256: str) -> xgb.Booster:
    """Reads a model file after checking it is byte for byte the one that was saved."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(verify_model_file(path, sha256)))
    return booster


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _mount_point(path: Path) -> Path:
    """The root of the file system that holds `path`."""
    path = path.resolve()
    while path != path.parent and path.parent.stat().st_dev == path.stat().st_dev:
        path = path.parent
    return path

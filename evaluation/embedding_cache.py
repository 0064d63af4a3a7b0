"""On-disk embedding cache for evaluation runs: one SQLite file per model fingerprint, item -> float32 vector.

The fingerprint hashes the model's weights and the settings that change an embedding (prompt format, image bounds,
`max_length`, normalisation), so a retrained or reconfigured model never reads another's vectors. An item's key
hashes its prompt text and image path together with the image file's size and modification time (a clip: its path
and every frame file's name, size and modification time).

Many writers: evaluations that share a cache folder at the same time (several `vlm2vec eval` runs, or several
torchrun jobs) share each file through SQLite's own locking. The file is in WAL mode (readers never block the
writer), a locked file is waited on (`BUSY_TIMEOUT_S`) and a write that still finds it locked is retried with
back-off until `LOCK_WAIT_S` has passed; each write is one transaction of at most `ROWS_PER_TRANSACTION` rows, so a
run killed mid-way leaves every committed row whole and nothing half-written. A vector written twice (two runs
encoding the same item) is the same vector, so the later write replacing the earlier loses nothing. WAL needs a
local file system (not NFS): on a cluster, give each node's rank 0 a local `--cache-dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from vlm2vec_hf.evaluation.data import Item, item_instruction, item_parts

BUSY_TIMEOUT_S = 30.0  # SQLite's own wait for a lock, per statement
LOCK_WAIT_S = 600.0  # then retries with back-off, until this long has passed
ROWS_PER_TRANSACTION = 512


def model_fingerprint(model: torch.nn.Module, settings: dict | None = None) -> str:
    """SHA-256 (hex, 16 chars) of every parameter and buffer (names, dtypes, shapes, bytes) plus `settings`."""
    digest = hashlib.sha256(json.dumps(settings or {}, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.view(torch.uint8).numpy())  # the buffer itself, no copy of multi-GiB weights
    return digest.hexdigest()[:16]


def _stamp(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _clip_stamp(clip: str) -> str:
    """A frame folder: every file's name, size and modification time (a replaced frame changes the key); a video
    file: its size and modification time."""
    if not os.path.isdir(clip):
        return _stamp(clip)
    return ";".join(f"{entry.name}={_stamp(entry.path)}" for entry in sorted(os.scandir(clip), key=lambda e: e.name))


def item_key(item: Item) -> str:
    """SHA-256 (hex) of the item's text and media paths with the media files' sizes and modification times."""
    text, image, video = item_parts(item)
    fields = [text, image, _stamp(image) if image else ""]
    if video:  # image and text items keep the keys they had before clips existed
        fields += [video, _clip_stamp(video)]
    if item_instruction(item) is not None:  # system-style items: their instruction is part of what is embedded
        fields += ["instruction", item_instruction(item)]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


class EmbeddingCache:
    """Embeddings of one model, keyed by item, in `<folder>/<fingerprint>.sqlite`; safe with other processes using
    the same file at the same time."""

    def __init__(self, folder: str | os.PathLike, fingerprint: str):
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.path = Path(folder) / f"{fingerprint}.sqlite"
        # Autocommit (isolation_level None): every write opens its own `BEGIN IMMEDIATE` transaction (write_rows).
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._retry(
            lambda: self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )
        )
        # Keys of the items seen by get(), reused by put(): a clip's key stats its frame files.
        self._keys: dict[Item, str] = {}

    def _retry(self, operation: Callable[[], object]) -> object:
        """Run `operation`, again after a growing pause while another process holds the file locked."""
        deadline = time.monotonic() + LOCK_WAIT_S
        pause = 0.05
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as error:
                locked = "locked" in str(error) or "busy" in str(error)
                if not locked or time.monotonic() > deadline:
                    raise sqlite3.OperationalError(f"embedding cache {self.path}: {error}") from error
                time.sleep(pause)
                pause = min(2 * pause, 2.0)

    def _key(self, item: Item) -> str:
        key = self._keys.get(item)
        if key is None:
            key = self._keys[item] = item_key(item)
        return key

    def get(self, items: Iterable[Item]) -> dict[Item, np.ndarray]:
        """The cached vectors (shape `(dim,)`, float32) of those `items` that are in the cache."""
        found = {}
        for item in items:
            query = ("SELECT vector FROM embeddings WHERE key = ?", (self._key(item),))
            row = self._retry(lambda query=query: self._db.execute(*query).fetchone())
            if row is not None:
                found[item] = np.frombuffer(row[0], dtype=np.float32)
        return found

    def put(self, items: list[Item], vectors: np.ndarray) -> None:
        """Store `vectors` (shape `(len(items), dim)`), `ROWS_PER_TRANSACTION` rows a transaction."""
        rows = [
            (self._key(item), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for item, v in zip(items, vectors)
        ]
        for start in range(0, len(rows), ROWS_PER_TRANSACTION):
            self._retry(lambda chunk=rows[start : start + ROWS_PER_TRANSACTION]: self._write_rows(chunk))

    def _write_rows(self, rows: list[tuple[str, bytes]]) -> None:
        """One transaction; `BEGIN IMMEDIATE` takes the write lock first, so it never fails half-way on a lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

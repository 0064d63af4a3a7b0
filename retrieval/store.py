"""An embedded collection on disk: `manifest.json` plus parquet shards of `(id, source, embedding)` rows.

Layout of a folder written by `vlm2vec embed`:

    manifest.json              format, model fingerprint, settings, item count, shard plan (see `Manifest`)
    shards/shard-00000.parquet  columns `id` (string), `source` (string: the item's file path or text),
                                `embedding` (fixed-size list of float32 / float16 / int8 / uint8)
    calibration.safetensors     int8 only: the quantization `ranges` (2, dim) every shard was quantized with
    bad_items.jsonl             items that could not be embedded: {"id", "source", "error", "shard"} per line,
                                merged from bad_items/shard-NNNNN.jsonl (one file per shard, written atomically
                                by whichever rank embedded the shard, so ranks never write the same file)
    index/                      search indexes, built once by `vlm2vec search`

A shard is written to a temporary name and renamed into place, so a shard file that exists is complete; a killed run
leaves at most a `*.tmp` file, which is ignored and overwritten. `datasets.load_dataset("parquet",
data_files="DIR/shards/*.parquet")` reads the shards; [`read_embeddings`] returns ids, sources and one numpy matrix.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "vlm2vec-embeddings"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
CALIBRATION = "calibration.safetensors"
BAD_ITEMS = "bad_items.jsonl"
INDEX = "index"
PRECISIONS = ("float32", "float16", "int8", "ubinary")
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "ubinary": np.uint8}


class StoreMismatchError(ValueError):
    """An output folder made with another model, other settings or other input than this run's."""


@dataclass
class Manifest:
    """What a folder's embeddings are: enough to refuse mixing runs and to embed queries the same way.

    Attributes:
        model: `{"source": model path or Hub id, "fingerprint": hash of the weights and processor settings}`.
        settings: everything besides the weights that changes a stored vector: `prompt`, `prompt_name`,
            `truncate_dim`, `precision` (one of `PRECISIONS`), `dim` (values per stored row: the embedding dimension,
            or dimension / 8 for `ubinary`), `normalize`.
        input: `{"source", "kind", "num_items", "ids_sha256"}`: the collection and a hash of its id list.
        shard_size: items per shard; shard k holds items `[k * shard_size, (k + 1) * shard_size)` in input order.
    """

    model: dict[str, Any]
    settings: dict[str, Any]
    input: dict[str, Any]
    shard_size: int
    format: str = FORMAT
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return int(self.input["num_items"])

    @property
    def num_shards(self) -> int:
        return (self.num_items + self.shard_size - 1) // self.shard_size

    def shard_range(self, shard: int) -> range:
        """The input positions shard `shard` holds."""
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_items))


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 of the id list, in order (the input's identity for resuming)."""
    digest = hashlib.sha256()
    for item_id in ids:
        digest.update(str(item_id).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_manifest(folder: str | os.PathLike) -> Manifest | None:
    """The folder's manifest, or None when it has none yet."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise StoreMismatchError(f"{path} is not a {FORMAT} manifest")
    return Manifest(**data)


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(manifest), indent=2, sort_keys=True)
    _write_atomically(folder / MANIFEST, lambda tmp: tmp.write_text(text))


def check_manifest(existing: Manifest, wanted: Manifest) -> None:
    """Raise `StoreMismatchError` naming every field (model, each setting, input, shard size) that differs."""
    differences = []
    if existing.model.get("fingerprint") != wanted.model.get("fingerprint"):
        differences.append(f"model ({existing.model.get('source')!r} there, {wanted.model.get('source')!r} here)")
    for name in sorted(set(existing.settings) | set(wanted.settings)):
        if existing.settings.get(name) != wanted.settings.get(name):
            there, here = existing.settings.get(name), wanted.settings.get(name)
            differences.append(f"setting {name} ({there!r} there, {here!r} here)")
    # `content_sha256` (texts and media paths too) is compared when both manifests record it.
    contents = (existing.input.get("content_sha256"), wanted.input.get("content_sha256"))
    if existing.input.get("ids_sha256") != wanted.input.get("ids_sha256") or (all(contents) and len(set(contents)) > 1):
        differences.append(f"input ({existing.input.get('source')!r} there, {wanted.input.get('source')!r} here)")
    if existing.shard_size != wanted.shard_size:
        differences.append(f"shard size ({existing.shard_size} there, {wanted.shard_size} here)")
    if differences:
        raise StoreMismatchError("the output folder was made by another run: it differs in " + "; ".join(differences))


def shard_path(folder: str | os.PathLike, shard: int) -> Path:
    return Path(folder) / SHARDS / f"shard-{shard:05d}.parquet"


def finished_shards(folder: str | os.PathLike) -> set[int]:
    """Shard numbers whose file exists (complete by construction; `*.tmp` files are ignored)."""
    directory = Path(folder) / SHARDS
    if not directory.is_dir():
        return set()
    return {int(path.stem.split("-")[1]) for path in directory.glob("shard-*.parquet")}


def write_shard(
    folder: str | os.PathLike, shard: int, ids: Sequence[str], sources: Sequence[str], embeddings: np.ndarray
) -> Path:
    """Write one shard atomically. `embeddings`: `(len(ids), dim)` in the stored precision's dtype."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if embeddings.ndim != 2 or len(embeddings) != len(ids) or len(ids) != len(sources):
        raise ValueError(f"shard {shard}: {len(ids)} ids, {len(sources)} sources, embeddings {embeddings.shape}")
    flat = pa.array(np.ascontiguousarray(embeddings).reshape(-1))
    table = pa.table(
        {
            "id": pa.array([str(item_id) for item_id in ids], pa.string()),
            "source": pa.array([str(source) for source in sources], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
        }
    )
    path = shard_path(folder, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda tmp: pq.write_table(table, tmp))
    return path


def read_shard(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """`(ids, sources, embeddings)` of one shard file, embeddings `(rows, dim)` in their stored dtype."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    values = column.values.to_numpy(zero_copy_only=False)
    return table.column("id").to_pylist(), table.column("source").to_pylist(), values.reshape(-1, dim)


def read_embeddings(folder: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Every finished shard of `folder`, in shard order: ids, sources and the `(items, dim)` matrix."""
    ids: list[str] = []
    sources: list[str] = []
    blocks = []
    for shard in sorted(finished_shards(folder)):
        shard_ids, shard_sources, block = read_shard(shard_path(folder, shard))
        ids += shard_ids
        sources += shard_sources
        blocks.append(block)
    if not blocks:
        raise FileNotFoundError(f"{folder} holds no finished shard")
    return ids, sources, np.concatenate(blocks)


def append_bad_items(folder: str | os.PathLike, rows: Sequence[dict[str, str]]) -> None:
    """Add `{"id", "source", "error"}` rows to the bad-items report (one JSON object per line)."""
    if not rows:
        return
    with open(Path(folder) / BAD_ITEMS, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def save_calibration(folder: str | os.PathLike, ranges: np.ndarray) -> None:
    """Write the int8 quantization `ranges` `(2, dim)` (per-dimension minimum and maximum) atomically."""
    from safetensors.numpy import save_file

    ranges = np.ascontiguousarray(ranges, dtype=np.float32)
    _write_atomically(Path(folder) / CALIBRATION, lambda tmp: save_file({"ranges": ranges}, str(tmp)))


def load_calibration(folder: str | os.PathLike) -> np.ndarray | None:
    """The int8 quantization `ranges` `(2, dim)`, or None when the folder has none."""
    from safetensors.numpy import load_file

    path = Path(folder) / CALIBRATION
    return load_file(str(path))["ranges"] if path.is_file() else None


def shard_bad_items_path(folder: str | os.PathLike, shard: int) -> Path:
    return Path(folder) / "bad_items" / f"shard-{shard:05d}.jsonl"


def write_shard_bad_items(folder: str | os.PathLike, shard: int, rows: Sequence[dict[str, str]]) -> None:
    """Replace shard `shard`'s bad-item rows (atomically; none: its file is removed). Call before writing the shard,
    so a finished shard always has its report."""
    path = shard_bad_items_path(folder, shard)
    if not rows:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({**row, "shard": shard}) + "\n" for row in rows)
    _write_atomically(path, lambda tmp: tmp.write_text(text))


def merge_bad_items(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Rewrite `bad_items.jsonl` from every shard's bad-item file, in shard order, and return its rows."""
    directory = Path(folder) / "bad_items"
    files = sorted(directory.glob("shard-*.jsonl")) if directory.is_dir() else []
    rows = [json.loads(line) for path in files for line in path.read_text().splitlines() if line]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    target = Path(folder) / BAD_ITEMS
    tmp = target.with_name(f"{BAD_ITEMS}.{os.getpid()}.tmp")  # two ranks stopping at once each write their own
    tmp.write_text(text)
    os.replace(tmp, target)
    return rows

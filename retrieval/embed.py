"""Embed a collection into a `store` folder, in one process or in every process `torchrun` / `accelerate launch`
started, resumably.

The work unit is the shard: shard k holds items `[k * shard_size, (k + 1) * shard_size)`. Rank 0 checks or writes the
manifest, stops early on items it can tell are bad without opening them (unless `skip_bad`), computes the int8
calibration once, and lists the shards not yet on disk; the others wait for it. Those shards are split across ranks
by estimated cost (`distributed.balanced_shares`). Each shard is embedded the same way whichever rank embeds it: its
items sorted by estimated cost (then position) and cut into batches in that order, so a shard's vectors do not
depend on the number of processes. A shard is written atomically (`store.write_shard`) after its bad-item rows, so a
killed run loses only the shards in flight and a rerun embeds only those.

Bad items (a missing or corrupt image, an unreadable clip, an empty row): a batch that fails is retried one item at a
time to find the culprits, and the rest of the batch is embedded again together. By default they stop the run with
an error naming their ids; with `skip_bad` they are left out of their shard (no row, never a made-up vector). Either
way they are listed in `bad_items.jsonl`.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm2vec_hf.distributed import Ranks, balanced_shares, device_for, gather_objects, init_process_group
from vlm2vec_hf.retrieval import store
from vlm2vec_hf.retrieval.inputs import Collection, CollectionItem

logger = logging.getLogger(__name__)

# Test hook (tests/test_embed_distributed.py): "RANK:SHARDS" makes that rank SIGKILL itself after writing that many
# shards, as a crashed or pre-empted worker would die.
KILL_HOOK = "VLM2VEC_TEST_KILL_RANK_AFTER_SHARDS"
ITEM_ERRORS = (ValueError, OSError)  # what the model raises for a bad input (PIL's UnidentifiedImageError is OSError)
IDS_IN_MESSAGE = 10


class BadItemsError(ValueError):
    """Items that cannot be embedded, when `skip_bad` is off; the message names their ids."""


@dataclass
class EmbedOptions:
    """How to embed. `prompt` / `prompt_name` as `SentenceTransformer.encode` takes them; `truncate_dim`: Matryoshka
    dimension (None: the model's); `precision`: one of `store.PRECISIONS`; `shard_size`: items per shard;
    `calibration_size`: items (spread evenly over the collection) whose float embeddings give the int8 ranges."""

    prompt: str | None = None
    prompt_name: str | None = None
    batch_size: int = 32
    truncate_dim: int | None = None
    precision: str = "float32"
    shard_size: int = 1000
    device: str | None = None
    skip_bad: bool = False
    calibration_size: int = 1000
    show_progress_bar: bool = True

    def validate(self) -> None:
        if self.precision not in store.PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(store.PRECISIONS)}")
        if self.prompt is not None and self.prompt_name is not None:
            raise ValueError("give a prompt or a prompt name, not both")
        for name in ("batch_size", "shard_size", "calibration_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.truncate_dim is not None and self.truncate_dim < 1:
            raise ValueError(f"truncate_dim must be at least 1, got {self.truncate_dim}")


@dataclass
class EmbedReport:
    """What a run did. `per_rank`: `{"rank", "shards", "items", "seconds"}` of each rank's share in this run."""

    out: str
    num_items: int
    num_shards: int
    shards_before: int
    shards_embedded: int
    items_embedded: int
    bad_items: list[dict[str, Any]]
    world_size: int
    per_rank: list[dict[str, Any]] = field(default_factory=list)


def _from_main(ranks: Ranks, compute):
    """`compute()` run on rank 0, its result (or its bad-input error) handed to every rank."""
    if not ranks.distributed:
        return compute()
    result, error = None, None
    if ranks.is_main:
        try:
            result = compute()
        except ITEM_ERRORS as caught:
            error = (isinstance(caught, BadItemsError), str(caught))
    result, error = gather_objects((result, error), ranks)[0]
    if error:
        raise (BadItemsError if error[0] else ValueError)(error[1])
    return result


def _bad_row(item: CollectionItem, error: str) -> dict[str, str]:
    return {"id": item.id, "source": item.source, "error": error}


def _bad_items_error(rows: list[dict[str, Any]], out: str | os.PathLike) -> BadItemsError:
    named = ", ".join(repr(row["id"]) for row in rows[:IDS_IN_MESSAGE])
    more = f" and {len(rows) - IDS_IN_MESSAGE} more" if len(rows) > IDS_IN_MESSAGE else ""
    first = f"{rows[0]['id']!r}: {rows[0]['error']}"
    return BadItemsError(
        f"{len(rows)} item(s) cannot be embedded: {named}{more} (first: {first}); listed in "
        f"{Path(out) / store.BAD_ITEMS}. Fix them, or rerun with --skip-bad to leave them out"
    )


class ShardEmbedder:
    """Embeds lists of items with one model and one set of options, finding the bad ones."""

    def __init__(self, model, options: EmbedOptions, ranges: np.ndarray | None = None):
        self.model = model
        self.options = options
        self.ranges = ranges

    def encode(self, items: list[CollectionItem]) -> np.ndarray:
        """Float32 `(len(items), dim)` L2-normalised (after truncation) embeddings, in one `encode` batch."""
        return self.model.encode(
            [item.encoder_input() for item in items],
            prompt=self.options.prompt,
            prompt_name=self.options.prompt_name,
            batch_size=len(items),
            truncate_dim=self.options.truncate_dim,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    def embed(self, items: list[CollectionItem], progress=None) -> tuple[np.ndarray, list[int], list[dict[str, str]]]:
        """Float32 embeddings of the good items, their positions in `items` (ascending) and the bad items' rows.

        Items are sorted by estimated cost (then position) and batched in that order: the same items always form
        the same batches."""
        bad = {i: problem for i, item in enumerate(items) if (problem := item.problem())}
        order = sorted((i for i in range(len(items)) if i not in bad), key=lambda i: (-items[i].cost(), i))
        vectors: dict[int, np.ndarray] = {}
        if progress is not None:
            progress.update(len(bad))
        size = self.options.batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            try:
                block = self.encode([items[i] for i in batch])
            except ITEM_ERRORS:
                for i in batch:  # find the culprits, then embed the rest together as a batch without them
                    try:
                        self.encode([items[i]])
                    except ITEM_ERRORS as error:
                        bad[i] = f"{type(error).__name__}: {error}"
                batch = [i for i in batch if i not in bad]
                block = self.encode([items[i] for i in batch]) if batch else None
            if block is not None:
                vectors.update(zip(batch, block))
            if progress is not None:
                progress.update(min(size, len(order) - start))
        kept = sorted(vectors)
        dim = self.model.get_embedding_dimension() if self.options.truncate_dim is None else None
        empty = np.zeros((0, self.options.truncate_dim or dim), np.float32)
        matrix = np.stack([vectors[i] for i in kept]) if kept else empty
        return matrix, kept, [_bad_row(items[i], bad[i]) for i in sorted(bad)]

    def quantize(self, embeddings: np.ndarray) -> np.ndarray:
        """`embeddings` (float32) in the stored precision, through sentence-transformers' `quantize_embeddings`."""
        precision = self.options.precision
        if precision == "float32":
            return embeddings
        if precision == "float16":
            return embeddings.astype(np.float16)
        from sentence_transformers.util.quantization import quantize_embeddings

        if len(embeddings) == 0:
            width = embeddings.shape[1] // 8 if precision == "ubinary" else embeddings.shape[1]
            return np.zeros((0, width), store.NUMPY_DTYPES[precision])
        return quantize_embeddings(embeddings, precision, ranges=self.ranges if precision == "int8" else None)


def load_model(model_source: str, ranks: Ranks, device: str | None):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_source), device=device_for(ranks, device), trust_remote_code=True)


def wanted_manifest(
    model, model_source: str, collection: Collection, options: EmbedOptions, fingerprint: bool = True
) -> store.Manifest:
    """The manifest this run's folder must have (model fingerprint, settings, input digest). `fingerprint=False`
    leaves the fingerprint out (None): only rank 0 checks and writes the manifest, and hashing every weight takes
    seconds per GB."""
    from vlm2vec_hf.evaluation.embedding_cache import model_fingerprint
    from vlm2vec_hf.evaluation.evaluator import embedding_settings

    full = model.get_embedding_dimension()
    dim = options.truncate_dim or full
    if options.truncate_dim is not None and options.truncate_dim > full:
        raise ValueError(f"truncate_dim {options.truncate_dim} is over the model's embedding dimension {full}")
    if options.precision == "ubinary" and dim % 8:
        raise ValueError(f"ubinary packs 8 dimensions a byte: the dimension {dim} is not a multiple of 8")
    if options.prompt_name is not None and options.prompt_name not in model.prompts:
        raise ValueError(f"prompt name {options.prompt_name!r} is not one of the model's: {', '.join(model.prompts)}")
    settings = {
        "prompt": options.prompt,
        "prompt_name": options.prompt_name,
        "truncate_dim": options.truncate_dim,
        "precision": options.precision,
        "dim": dim // 8 if options.precision == "ubinary" else dim,
        "normalize": True,
    }
    if options.precision == "int8":
        settings["calibration_size"] = options.calibration_size
    return store.Manifest(
        model={
            "source": str(model_source),
            "fingerprint": model_fingerprint(model, embedding_settings(model)) if fingerprint else None,
        },
        settings=settings,
        input={
            "source": collection.source,
            "kind": collection.kind,
            "num_items": len(collection.items),
            "ids_sha256": store.ids_digest(collection.ids),
            "content_sha256": collection.content_digest(),
        },
        shard_size=options.shard_size,
        extra={"batch_size": options.batch_size},
    )


def _prepare(out: Path, manifest: store.Manifest, collection: Collection, embedder: ShardEmbedder, world_size: int):
    """Rank 0's part before anyone embeds: manifest, early bad-item stop, int8 calibration, the plan. Returns
    `(shards already on disk, each rank's list of shards to embed)`."""
    existing = store.read_manifest(out)
    if existing is not None:
        store.check_manifest(existing, manifest)
    else:
        store.write_manifest(out, manifest)
    done = store.finished_shards(out)
    missing = [shard for shard in range(manifest.num_shards) if shard not in done]
    options = embedder.options
    if not options.skip_bad:  # missing files and empty rows: stop before any model time is spent
        rows = []
        for shard in missing:
            shard_rows = [
                _bad_row(collection.items[i], problem)
                for i in manifest.shard_range(shard)
                if (problem := collection.items[i].problem())
            ]
            store.write_shard_bad_items(out, shard, shard_rows)
            rows += shard_rows
        if rows:
            store.merge_bad_items(out)
            raise _bad_items_error(rows, out)
    if options.precision == "int8" and store.load_calibration(out) is None:
        count = min(options.calibration_size, len(collection.items))
        sample = sorted(set(np.linspace(0, len(collection.items) - 1, count).round().astype(int).tolist()))
        floats, _kept, _bad = embedder.embed([collection.items[i] for i in sample])
        if len(floats) < 2:
            raise ValueError(f"int8 calibration needs at least 2 embeddable items, the sample had {len(floats)}")
        store.save_calibration(out, np.stack([floats.min(axis=0), floats.max(axis=0)]))
    costs = [sum(collection.items[i].cost() for i in manifest.shard_range(shard)) for shard in missing]
    shares = [[missing[i] for i in share] for share in balanced_shares(costs, world_size)]
    return len(done), shares


def _kill_hook(ranks: Ranks, shards_written: int) -> None:
    hook = os.environ.get(KILL_HOOK)
    if hook and hook.split(":") == [str(ranks.rank), str(shards_written)]:
        os.kill(os.getpid(), signal.SIGKILL)


def embed_collection(
    model_source: str | os.PathLike, collection: Collection, out: str | os.PathLike, options: EmbedOptions
) -> EmbedReport:
    """Embed `collection` into the folder `out` (created or resumed) with every launched process; see the module
    docstring. Raises `store.StoreMismatchError` for a folder of another run, `BadItemsError` for bad items without
    `skip_bad`. Every rank returns the same report."""
    options.validate()
    out = Path(out)
    ranks = init_process_group()
    model = load_model(str(model_source), ranks, options.device)
    manifest = wanted_manifest(model, str(model_source), collection, options, fingerprint=ranks.is_main)
    embedder = ShardEmbedder(model, options)
    shards_before, shares = _from_main(ranks, lambda: _prepare(out, manifest, collection, embedder, ranks.world_size))
    embedder.ranges = store.load_calibration(out) if options.precision == "int8" else None

    from tqdm.auto import tqdm

    mine = shares[ranks.rank]
    total = sum(len(manifest.shard_range(shard)) for shard in mine)
    started, error = time.perf_counter(), None
    bar = tqdm(total=total, unit="item", desc="Embedding", disable=not (ranks.is_main and options.show_progress_bar))
    with bar:
        for written, shard in enumerate(mine, 1):
            positions = manifest.shard_range(shard)
            items = [collection.items[i] for i in positions]
            floats, kept, bad_rows = embedder.embed(items, bar)
            store.write_shard_bad_items(out, shard, bad_rows)
            if bad_rows and not options.skip_bad:  # stop; the other ranks finish their shards, then all raise
                error = bad_rows
                break
            kept_items = [items[i] for i in kept]
            store.write_shard(
                out, shard, [i.id for i in kept_items], [i.source for i in kept_items], embedder.quantize(floats)
            )
            _kill_hook(ranks, written)
    mine_report = {"rank": ranks.rank, "shards": len(mine), "items": total, "seconds": time.perf_counter() - started}
    gathered = gather_objects((mine_report, error), ranks)
    rows = store.merge_bad_items(out) if ranks.is_main else []
    errors = [row for _, rank_error in gathered for row in rank_error or []]
    if errors:
        raise _bad_items_error(errors, out)
    rows = gather_objects(rows, ranks)[0]
    return EmbedReport(
        out=str(out),
        num_items=manifest.num_items,
        num_shards=manifest.num_shards,
        shards_before=shards_before,
        shards_embedded=sum(len(share) for share in shares),
        items_embedded=sum(report["items"] for report, _ in gathered),
        bad_items=rows,
        world_size=ranks.world_size,
        per_rank=[report for report, _ in gathered],
    )

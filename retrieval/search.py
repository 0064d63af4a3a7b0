"""Search an embedded collection (a `vlm2vec embed` folder, see `store`) with sentence-transformers' usearch helper.

Modes (the index is searched exhaustively, `exact=True`, over the vectors the mode keeps):

- `exact`: float32 vectors, cosine. Scores are cosine similarities.
- `int8`: int8 codes (sentence-transformers' `quantize_embeddings`, ranges from the corpus, or the folder's
  calibration ranges when it stores int8), 4x smaller. `semantic_search_usearch` takes `top_k * rescore_multiplier`
  candidates by the int8 inner product and rescores them with the float query against the *dequantized int8*
  corpus: scores are approximate cosines.
- `binary`: one bit per dimension (`ubinary`), 32x smaller, Hamming distance. The helper's own rescoring (float query
  against the corpus *bits*) cannot rank the candidates finely (recall@10 about 0.44 in
  `benchmarks/search_quantized.py`), so its `top_k * rescore_multiplier` Hamming candidates are rescored here against
  the float vectors, which stay on disk in a memory-mapped `.npy` beside the index (only the candidates' rows are
  read): scores are cosine similarities. A folder that stores only bits (`ubinary`) has no float vectors: there the
  helper's float-query-against-bits rescoring is all that can be done, and the scores are those dot products.

`truncate_dim` keeps the first dimensions of corpus and query and renormalises both (Matryoshka). An index is built
once per (mode, dimension) and saved as `FOLDER/index/<mode>-<dim>.usearch` with `<mode>-<dim>.json` recording what
it was built from (the shard files, item count, model fingerprint, stored precision); a folder whose shards changed
gets a new index. The JSON is written last: an index without one is incomplete and rebuilt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlm2vec_hf.retrieval import store

MODES = ("exact", "int8", "binary")
# usearch index settings per mode: (scalar kind, metric). The graph is never walked (every search is exact), so it
# is built as small and as fast as usearch allows.
INDEX_KINDS = {"exact": ("f32", "cos"), "int8": ("i8", "ip"), "binary": ("b1", "hamming")}
HELPER_PRECISION = {"exact": "float32", "int8": "int8", "binary": "ubinary"}
# Candidates per result to rescore; binary from benchmarks/results/search_quantized.md (recall@10 >= 0.95 there).
DEFAULT_RESCORE_MULTIPLIER = {"exact": 1, "int8": 4, "binary": 10}
DEFAULT_MODE = {"float32": "exact", "float16": "exact", "int8": "int8", "ubinary": "binary"}
INDEX_FORMAT_VERSION = 1


class SearchError(ValueError):
    """A search the folder cannot serve (mode, dimension, model); the message says which and why."""


@dataclass
class Hit:
    """One result: the item's id, its score (see the module docstring per mode) and its source (path or text)."""

    id: str
    score: float
    source: str


@dataclass
class PreparedIndex:
    """A usearch index ready to search, with what the mode needs beside it.

    Attributes:
        mode: one of `MODES`.
        dim: float dimension the index compares (after truncation).
        index: the `usearch.index.Index`, keys `0 .. n - 1` in shard order.
        ranges: int8 mode: `(2, dim)` float32 quantization ranges.
        rescore_vectors: binary mode with float vectors: `(n, dim)` float (memory-mapped when loaded from disk).
        built: True when this call built (and saved) the index, False when it was loaded.
    """

    mode: str
    dim: int
    index: Any
    ranges: np.ndarray | None = None
    rescore_vectors: np.ndarray | None = None
    built: bool = False

    @property
    def score_kind(self) -> str:
        if self.mode == "binary" and self.rescore_vectors is None:
            return "float query . stored bits (no float vectors stored)"
        if self.mode == "int8":
            return "cosine against the dequantized int8 corpus"
        return "cosine"


# ---- vectors ---------------------------------------------------------------------------------------------


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero); float32 `(n, dim)`."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def truncate(vectors: np.ndarray, dim: int | None) -> np.ndarray:
    """Matryoshka: the first `dim` dimensions, renormalised (all of them, renormalised, when `dim` is None)."""
    return normalize(vectors if dim is None else vectors[:, :dim])


def read_ranges(folder: str | os.PathLike) -> np.ndarray:
    """The int8 quantization ranges `(2, dim)` the folder's shards were quantized with (`store.CALIBRATION`)."""
    ranges = store.load_calibration(folder)
    if ranges is None:
        raise SearchError(f"{folder} stores int8 embeddings but has no {store.CALIBRATION} (their ranges)")
    return ranges.astype(np.float32)


def float_corpus(precision: str, stored: np.ndarray, ranges: np.ndarray | None = None) -> np.ndarray | None:
    """The stored embeddings as float32 `(n, dim)`: float16/32 as they are, int8 dequantized with `ranges` exactly as
    sentence-transformers' rescoring does; None for `ubinary` (only the signs were kept)."""
    if precision in ("float32", "float16"):
        return stored.astype(np.float32)
    if precision == "int8":
        from sentence_transformers.util.quantization import _dequantize_embeddings

        return _dequantize_embeddings(stored, "int8", ranges).astype(np.float32)
    return None


def stored_float_dim(manifest: store.Manifest) -> int:
    """The float dimension of the folder's embeddings (`dim` counts bytes for `ubinary`)."""
    dim = int(manifest.settings["dim"])
    return dim * 8 if manifest.settings["precision"] == "ubinary" else dim


# ---- building and searching an index ----------------------------------------------------------------------


def usearch_index_class():
    """`usearch.index.Index`, or a `SearchError` saying how to install it (the `[search]` extra)."""
    try:
        from usearch.index import Index
    except ImportError:
        raise SearchError('search needs usearch, the [search] extra: pip install "vlm2vec-hf[search]"') from None
    return Index


def new_index(mode: str, dim: int):
    dtype, metric = INDEX_KINDS[mode]
    return usearch_index_class()(ndim=dim, metric=metric, dtype=dtype, connectivity=2, expansion_add=2)


def build_index(
    mode: str, vectors: np.ndarray | None, *, codes: np.ndarray | None = None, ranges: np.ndarray | None = None
) -> PreparedIndex:
    """Index `vectors` (float32 `(n, dim)`, already truncated and normalised) for `mode`.

    `codes`: the corpus already quantized for the mode (int8 `(n, dim)` with `ranges`, or ubinary `(n, dim / 8)`),
    used as they are; otherwise `vectors` are quantized with `quantize_embeddings` (int8 ranges: the corpus's own
    min / max per dimension). Binary mode keeps `vectors` (when given) for rescoring."""
    from sentence_transformers.util.quantization import quantize_embeddings

    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if codes is None:
        if vectors is None:
            raise SearchError(f"{mode} search needs float vectors or {HELPER_PRECISION[mode]} codes")
        if mode == "int8" and ranges is None:
            ranges = np.vstack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)
        codes = vectors if mode == "exact" else quantize_embeddings(vectors, HELPER_PRECISION[mode], ranges=ranges)
    dim = codes.shape[1] * 8 if mode == "binary" else codes.shape[1]
    index = new_index(mode, dim)
    index.add(np.arange(len(codes), dtype=np.uint64), codes)
    return PreparedIndex(
        mode, dim, index, ranges=ranges, rescore_vectors=vectors if mode == "binary" else None, built=True
    )


def search_index(
    prepared: PreparedIndex, queries: np.ndarray, top_k: int = 10, rescore_multiplier: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k corpus rows per query through `semantic_search_usearch`.

    `queries`: float32 `(q, dim)`, truncated and normalised as the corpus. Returns `(rows, scores)`, both `(q, k)` with
    `k = min(top_k, corpus size)`, best first; scores as the module docstring says per mode."""
    from sentence_transformers.util.quantization import semantic_search_usearch

    mode = prepared.mode
    multiplier = DEFAULT_RESCORE_MULTIPLIER[mode] if rescore_multiplier is None else rescore_multiplier
    if multiplier < 1:
        raise SearchError(f"rescore_multiplier must be at least 1, got {multiplier}")
    if queries.shape[1] != prepared.dim:
        raise SearchError(f"queries have {queries.shape[1]} dimensions, the {mode} index {prepared.dim}")
    top_k = min(top_k, len(prepared.index))
    rescore_here = mode == "binary" and prepared.rescore_vectors is not None
    results, _ = semantic_search_usearch(
        queries,
        corpus_index=prepared.index,
        corpus_precision=HELPER_PRECISION[mode],
        top_k=min(top_k * multiplier, len(prepared.index)) if rescore_here else top_k,
        ranges=prepared.ranges,
        rescore=mode != "exact" and not rescore_here,
        rescore_multiplier=multiplier,
        exact=True,
    )
    rows = np.array([[hit["corpus_id"] for hit in hits] for hits in results], dtype=np.int64)
    scores = np.array([[hit["score"] for hit in hits] for hits in results], dtype=np.float64)
    if mode == "exact":
        scores = 1.0 - scores  # usearch's cosine *distance*
    if rescore_here:
        gathered = np.asarray(prepared.rescore_vectors[rows], dtype=np.float32)  # (q, k * multiplier, dim)
        scores = np.einsum("qd,qkd->qk", queries, gathered).astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
    return rows, scores


# ---- the index saved in a folder -------------------------------------------------------------------------


def index_paths(folder: str | os.PathLike, mode: str, dim: int) -> dict[str, Path]:
    base = Path(folder) / store.INDEX / f"{mode}-{dim}"
    return {
        "index": base.with_suffix(".usearch"),
        "info": base.with_suffix(".json"),
        "ranges": base.with_suffix(".ranges.npy"),
        "rescore": base.with_suffix(".rescore.npy"),
    }


def built_from(folder: str | os.PathLike, manifest: store.Manifest) -> dict[str, Any]:
    """What an index of `folder` depends on: the shard files (name, size, mtime), item count, model, precision."""
    shards = {}
    for shard in sorted(store.finished_shards(folder)):
        stat = store.shard_path(folder, shard).stat()
        shards[store.shard_path(folder, shard).name] = [stat.st_size, stat.st_mtime_ns]
    return {
        "shards": shards,
        "num_items": manifest.num_items,
        "fingerprint": manifest.model.get("fingerprint"),
        "precision": manifest.settings["precision"],
        "stored_dim": manifest.settings["dim"],
    }


def _check_dim(manifest: store.Manifest, mode: str, dim: int | None) -> int:
    full = stored_float_dim(manifest)
    if dim is None:
        return full
    if not 1 <= dim <= full:
        raise SearchError(f"truncate_dim {dim} is outside 1..{full} (the folder's embedding dimension)")
    if mode == "binary" and dim % 8:
        raise SearchError(f"binary search packs 8 dimensions a byte: truncate_dim {dim} is not a multiple of 8")
    return dim


def prepare_folder_index(folder: str | os.PathLike, mode: str | None = None, dim: int | None = None) -> PreparedIndex:
    """The (mode, dim) index of `folder`: loaded when its JSON matches the folder's shards, else built and saved.

    `mode` None: the stored precision's own (`DEFAULT_MODE`). `dim` None: the stored dimension."""
    manifest = store.read_manifest(folder)
    if manifest is None:
        raise SearchError(f"{folder} has no {store.MANIFEST}: not a `vlm2vec embed` folder")
    precision = manifest.settings["precision"]
    mode = mode or DEFAULT_MODE[precision]
    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if precision == "ubinary" and mode != "binary":
        raise SearchError(f"{folder} stores only bits (ubinary): search it with mode binary, not {mode}")
    dim = _check_dim(manifest, mode, dim)
    paths = index_paths(folder, mode, dim)
    source = built_from(folder, manifest)
    if paths["info"].is_file():
        info = json.loads(paths["info"].read_text())
        if info.get("built_from") == source and info.get("version") == INDEX_FORMAT_VERSION:
            return PreparedIndex(
                mode,
                dim,
                usearch_index_class().restore(str(paths["index"]), view=True),
                ranges=np.load(paths["ranges"]) if info["files"].get("ranges") else None,
                rescore_vectors=np.load(paths["rescore"], mmap_mode="r") if info["files"].get("rescore") else None,
            )
    prepared = _build_for_folder(folder, manifest, mode, dim)
    _save(prepared, paths, source)
    return prepared


def _build_for_folder(folder, manifest: store.Manifest, mode: str, dim: int) -> PreparedIndex:
    _, _, stored = store.read_embeddings(folder)
    precision = manifest.settings["precision"]
    full = stored_float_dim(manifest)
    if precision == "ubinary":
        return build_index(mode, None, codes=stored[:, : dim // 8])
    stored_ranges = read_ranges(folder) if precision == "int8" else None
    if precision == "int8" and mode == "int8" and dim == full:
        return build_index(mode, None, codes=stored, ranges=stored_ranges)  # the stored codes, as they are
    vectors = truncate(float_corpus(precision, stored, stored_ranges), dim)
    return build_index(mode, vectors)


def _replace_with(path: Path, write) -> None:
    """`write(tmp)` then rename over `path` (per process: concurrent builders never read each other's half files)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _npy_writer(array: np.ndarray):
    def write(path: Path) -> None:
        with open(path, "wb") as handle:  # a file handle: `np.save` would append `.npy` to the temporary name
            np.save(handle, array)

    return write


def _save(prepared: PreparedIndex, paths: dict[str, Path], source: dict[str, Any]) -> None:
    paths["index"].parent.mkdir(parents=True, exist_ok=True)
    paths["info"].unlink(missing_ok=True)  # an index without its JSON is incomplete
    _replace_with(paths["index"], lambda tmp: prepared.index.save(str(tmp)))
    files = {"index": paths["index"].name}
    if prepared.ranges is not None:
        _replace_with(paths["ranges"], _npy_writer(prepared.ranges))
        files["ranges"] = paths["ranges"].name
    if prepared.rescore_vectors is not None:
        vectors = prepared.rescore_vectors.astype(np.float32 if source["precision"] == "float32" else np.float16)
        _replace_with(paths["rescore"], _npy_writer(vectors))
        files["rescore"] = paths["rescore"].name
    info = {"version": INDEX_FORMAT_VERSION, "mode": prepared.mode, "dim": prepared.dim, "files": files}
    info["built_from"] = source
    _replace_with(paths["info"], lambda tmp: tmp.write_text(json.dumps(info, indent=2, sort_keys=True)))


def unfinished_shards(folder: str | os.PathLike, manifest: store.Manifest) -> list[int]:
    """Shards the manifest plans that have no file yet (an embedding run still going, or killed): not searched."""
    return sorted(set(range(manifest.num_shards)) - store.finished_shards(folder))


def read_ids_and_sources(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The `id` and `source` columns of every finished shard, in shard order (the embeddings are not read)."""
    import pyarrow.parquet as pq

    ids: list[str] = []
    sources: list[str] = []
    for shard in sorted(store.finished_shards(folder)):
        table = pq.read_table(store.shard_path(folder, shard), columns=["id", "source"])
        ids += table.column("id").to_pylist()
        sources += table.column("source").to_pylist()
    return ids, sources


def search_folder(
    folder: str | os.PathLike,
    queries: np.ndarray,
    *,
    mode: str | None = None,
    top_k: int = 10,
    rescore_multiplier: int | None = None,
    truncate_dim: int | None = None,
) -> tuple[list[list[Hit]], PreparedIndex]:
    """Search `folder` with query embeddings `(q, stored float dim)` (float32, from the folder's model and prompt).

    Returns the hits per query (best first) and the index used (`.built` tells whether this call built it)."""
    prepared = prepare_folder_index(folder, mode, truncate_dim)
    rows, scores = search_index(prepared, truncate(queries, prepared.dim), top_k, rescore_multiplier)
    ids, sources = read_ids_and_sources(folder)
    hits = [
        [Hit(ids[row], float(score), sources[row]) for row, score in zip(query_rows, query_scores)]
        for query_rows, query_scores in zip(rows, scores)
    ]
    return hits, prepared


# ---- queries -----------------------------------------------------------------------------------------------


def load_query_model(manifest: store.Manifest, model_source: str | None = None, device: str | None = None):
    """The folder's model (`model_source`, default: the manifest's), refused unless its fingerprint matches."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.evaluation.embedding_cache import model_fingerprint
    from vlm2vec_hf.evaluation.evaluator import embedding_settings

    source = model_source or manifest.model["source"]
    model = SentenceTransformer(str(source), device=device, trust_remote_code=True)
    fingerprint = model_fingerprint(model, embedding_settings(model))
    if fingerprint != manifest.model.get("fingerprint"):
        raise SearchError(
            f"model {str(source)!r} (fingerprint {fingerprint}) is not the model the folder was embedded with "
            f"({manifest.model.get('source')!r}, fingerprint {manifest.model.get('fingerprint')})"
        )
    return model


def query_input(text: str | None = None, image: str | None = None, video: str | None = None):
    """A query as `vlm2vec embed` hands items to `encode`: the text alone, or `{"image"|"video": path[, "text"]}`."""
    from vlm2vec_hf.retrieval.inputs import CollectionItem

    if image and video:
        raise SearchError("a query takes an image or a video, not both")
    if not (text or image or video):
        raise SearchError("a query needs a text, an image or a video")
    return CollectionItem("query", text or "", str(image or ""), str(video or "")).encoder_input()


def embed_queries(model, manifest: store.Manifest, queries: list, batch_size: int = 8) -> np.ndarray:
    """Float32 `(q, stored float dim)` query embeddings with the folder's prompt, truncated and normalised as the
    folder's embeddings were (`truncate_dim` then L2)."""
    settings = manifest.settings
    vectors = model.encode(
        queries,
        prompt=settings.get("prompt"),
        prompt_name=settings.get("prompt_name"),
        batch_size=batch_size,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return truncate(np.asarray(vectors, dtype=np.float32), stored_float_dim(manifest))

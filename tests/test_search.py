"""`vlm2vec search` (`vlm2vec_hf.retrieval.search`): exact, int8 and binary search of an embedded folder, the saved
index, Matryoshka truncation, the model check and the CLI output.

The folders are written here with `store.write_manifest` / `store.write_shard` from `SentenceTransformer.encode`, so
these tests do not depend on `vlm2vec embed`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_clip
from PIL import Image

from vlm2vec_hf.cli import main
from vlm2vec_hf.retrieval import search, store

PROMPT = "Represent the given item:"
TEXTS = [
    "a red bus on a bridge",
    "two cats asleep on a sofa",
    "the stock market fell sharply today",
    "how to bake sourdough bread",
    "a mountain lake at dawn",
    "quantum error correction codes",
    "a child flying a kite",
    "recipe for green curry",
    "the history of the printing press",
    "a violin concerto in D major",
    "electric cars and battery range",
    "a lighthouse in a storm",
]


def _images(root: Path) -> list[str]:
    """Four 64x64 images that differ in colour and pattern."""
    paths = []
    for number, colour in enumerate([(230, 30, 30), (30, 200, 40), (20, 40, 220), (240, 240, 20)]):
        pixels = np.zeros((64, 64, 3), np.uint8) + np.array(colour, np.uint8)
        pixels[number * 12 : number * 12 + 16, ::2] = 255 - pixels[0, 0]
        path = root / f"image-{number}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def _fingerprint(model) -> str:
    from vlm2vec_hf.evaluation.embedding_cache import model_fingerprint
    from vlm2vec_hf.evaluation.evaluator import embedding_settings

    return model_fingerprint(model, embedding_settings(model))


def write_folder(
    folder: Path, ids, sources, vectors: np.ndarray, *, model=("m", "f"), precision="float32", shard_size=8, **settings
) -> Path:
    """An embedded folder as `vlm2vec embed` writes it: manifest, shards of `shard_size` rows, int8 calibration.
    `vectors`: float32 `(n, dim)`, L2-normalised; quantized here for int8 / ubinary."""
    from safetensors.numpy import save_file
    from sentence_transformers.util.quantization import quantize_embeddings

    stored = vectors.astype(np.float16) if precision == "float16" else vectors
    if precision == "int8":
        ranges = np.vstack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"ranges": ranges}, str(folder / store.CALIBRATION))
        stored = quantize_embeddings(vectors, "int8", ranges=ranges)
    elif precision == "ubinary":
        stored = quantize_embeddings(vectors, "ubinary")
    manifest = store.Manifest(
        model={"source": str(model[0]), "fingerprint": model[1]},
        settings={
            "prompt": settings.get("prompt"),
            "prompt_name": None,
            "truncate_dim": None,
            "precision": precision,
            "dim": stored.shape[1],
            "normalize": True,
        },
        input={"source": "test", "kind": "table", "num_items": len(ids), "ids_sha256": store.ids_digest(ids)},
        shard_size=shard_size,
    )
    store.write_manifest(folder, manifest)
    for shard in range(manifest.num_shards):
        rows = manifest.shard_range(shard)
        store.write_shard(folder, shard, ids[rows.start : rows.stop], sources[rows.start : rows.stop], stored[rows])
    return folder


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """`(n, dim)` unit vectors around `clusters` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return search.normalize(centres[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim)))


@pytest.fixture(scope="module")
def vectors_folder(tmp_path_factory):
    """300 clustered 64-d vectors in float32, ids `v0..v299`, in shards of 128."""
    vectors = clustered(300, 64)
    ids = [f"v{i}" for i in range(300)]
    folder = write_folder(tmp_path_factory.mktemp("search") / "vectors", ids, [f"{i}.png" for i in ids], vectors)
    return folder, vectors


# ---- engine on stored vectors (no model) ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", search.MODES)
def test_each_stored_vector_finds_itself_first_in_every_mode(vectors_folder, mode):
    folder, vectors = vectors_folder
    hits, prepared = search.search_folder(folder, vectors, mode=mode, top_k=5)
    assert prepared.mode == mode and prepared.dim == 64
    assert [found[0].id for found in hits] == [f"v{i}" for i in range(300)]
    assert all(len(found) == 5 and found[0].source == f"{found[0].id}.png" for found in hits)
    scores = np.array([[hit.score for hit in found] for found in hits])
    assert np.all(np.diff(scores, axis=1) <= 1e-9)  # best first
    assert np.allclose(scores[:, 0], 1.0, atol=0.02)  # a cosine (int8: against the dequantized corpus)


def test_quantized_modes_keep_recall_with_rescoring_and_lose_it_without(vectors_folder):
    """Top-10 of perturbed queries against exact search: binary + rescoring finds (nearly) all of them; the Hamming
    candidates alone (multiplier 1) do not, so the rescoring is what recovers recall."""
    folder, vectors = vectors_folder
    rng = np.random.default_rng(1)
    queries = search.normalize(vectors[:40] + 0.05 * rng.standard_normal((40, 64)))
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    def recall(mode, multiplier):
        hits, _ = search.search_folder(folder, queries, mode=mode, top_k=10, rescore_multiplier=multiplier)
        found = [{int(hit.id[1:]) for hit in row} for row in hits]
        return np.mean([len(f & set(e)) / 10 for f, e in zip(found, exact)])

    assert recall("exact", None) == 1.0
    assert recall("int8", 4) >= 0.95
    assert recall("binary", 10) >= 0.95
    assert recall("binary", 1) < 0.9


def test_binary_scores_are_rescored_cosines(vectors_folder):
    folder, vectors = vectors_folder
    queries = search.normalize(vectors[:3] + 0.2)
    hits, prepared = search.search_folder(folder, queries, mode="binary", top_k=4)
    assert prepared.rescore_vectors is not None and prepared.score_kind == "cosine"
    for query, found in zip(queries, hits):
        rows = [int(hit.id[1:]) for hit in found]
        assert np.allclose([hit.score for hit in found], vectors[rows] @ query, atol=1e-5)


def test_the_index_is_saved_reused_and_rebuilt_when_the_folder_grows(tmp_path):
    vectors = clustered(40, 32, seed=3)
    ids = [f"x{i}" for i in range(40)]
    folder = write_folder(tmp_path / "grow", ids[:30], ids[:30], vectors[:30], shard_size=10)
    hits, first = search.search_folder(folder, vectors[:2], mode="binary", top_k=1)
    paths = search.index_paths(folder, "binary", 32)
    assert first.built and all(paths[name].is_file() for name in ("index", "info", "rescore"))
    assert not list(paths["index"].parent.glob("*.tmp"))  # written under temporary names, then renamed
    stamp = paths["index"].stat().st_mtime_ns
    info = json.loads(paths["info"].read_text())
    assert info["built_from"]["num_items"] == 30 and sorted(info["built_from"]["shards"]) == [
        f"shard-0000{i}.parquet" for i in range(3)
    ]

    hits_again, again = search.search_folder(folder, vectors[:2], mode="binary", top_k=1)
    assert not again.built and paths["index"].stat().st_mtime_ns == stamp
    assert [h[0].id for h in hits_again] == [h[0].id for h in hits] == ["x0", "x1"]

    write_folder(folder, ids, ids, vectors, shard_size=10)  # the collection grew: a fourth shard
    hits, grown = search.search_folder(folder, vectors[35:37], mode="binary", top_k=1)
    assert grown.built and [h[0].id for h in hits] == ["x35", "x36"]
    assert json.loads(paths["info"].read_text())["built_from"]["num_items"] == 40


def test_shards_not_embedded_yet_are_named(tmp_path):
    vectors = clustered(30, 16, seed=7)
    folder = write_folder(tmp_path / "partial", [str(i) for i in range(30)], ["s"] * 30, vectors, shard_size=10)
    manifest = store.read_manifest(folder)
    assert search.unfinished_shards(folder, manifest) == []
    store.shard_path(folder, 1).unlink()  # a run killed before shard 1
    assert search.unfinished_shards(folder, manifest) == [1]
    hits, _ = search.search_folder(folder, vectors[25:26], top_k=1)
    assert hits[0][0].id == "25"


def test_an_index_without_its_json_is_rebuilt(vectors_folder, tmp_path):
    vectors = clustered(20, 16, seed=4)
    folder = write_folder(tmp_path / "half", [str(i) for i in range(20)], ["s"] * 20, vectors)
    search.search_folder(folder, vectors[:1], mode="exact")
    search.index_paths(folder, "exact", 16)["info"].unlink()  # a build killed before its JSON
    assert search.search_folder(folder, vectors[:1], mode="exact")[1].built


def test_truncate_dim_searches_a_smaller_renormalised_index(vectors_folder):
    folder, vectors = vectors_folder
    query = vectors[7:8] + 0.1
    hits, prepared = search.search_folder(folder, query, mode="exact", top_k=5, truncate_dim=16)
    assert prepared.dim == 16 and search.index_paths(folder, "exact", 16)["index"].is_file()
    short = search.normalize(vectors[:, :16])
    expected = short @ search.normalize(query[:, :16])[0]
    assert [hit.id for hit in hits[0]] == [f"v{i}" for i in np.argsort(-expected)[:5]]
    assert np.allclose([hit.score for hit in hits[0]], np.sort(expected)[::-1][:5], atol=1e-5)
    assert prepared.index.ndim == 16


@pytest.mark.parametrize(
    ("mode", "dim", "message"),
    [
        ("binary", 12, "not a multiple of 8"),
        ("exact", 65, r"outside 1\.\.64"),
        ("cosine", None, "unknown mode 'cosine'"),
    ],
)
def test_impossible_searches_are_refused_by_name(vectors_folder, mode, dim, message):
    folder, vectors = vectors_folder
    with pytest.raises(search.SearchError, match=message):
        search.search_folder(folder, vectors[:1], mode=mode, truncate_dim=dim)


def test_an_int8_folder_is_searched_with_its_own_codes_and_calibration(tmp_path):
    vectors = clustered(100, 32, seed=5)
    ids = [f"q{i}" for i in range(100)]
    folder = write_folder(tmp_path / "int8", ids, ids, vectors, precision="int8")
    hits, prepared = search.search_folder(folder, vectors[:20], top_k=3)
    assert prepared.mode == "int8" and [h[0].id for h in hits] == ids[:20]
    assert np.array_equal(prepared.ranges, search.read_ranges(folder))
    exact_hits, _ = search.search_folder(folder, vectors[:20], mode="exact", top_k=1)  # over the dequantized codes
    assert [h[0].id for h in exact_hits] == ids[:20]
    (folder / store.CALIBRATION).unlink()
    with pytest.raises(search.SearchError, match="no calibration.safetensors"):
        search.search_folder(folder, vectors[:1], mode="binary")


def test_a_ubinary_folder_is_searched_by_its_bits_only(tmp_path):
    vectors = clustered(100, 64, seed=6)
    ids = [f"b{i}" for i in range(100)]
    folder = write_folder(tmp_path / "bits", ids, ids, vectors, precision="ubinary")
    hits, prepared = search.search_folder(folder, vectors[:10], top_k=3)
    assert prepared.mode == "binary" and prepared.rescore_vectors is None and "bits" in prepared.score_kind
    assert [h[0].id for h in hits] == ids[:10]
    assert search.search_folder(folder, vectors[:1], truncate_dim=32)[1].index.ndim == 32
    with pytest.raises(search.SearchError, match="stores only bits"):
        search.search_folder(folder, vectors[:1], mode="exact")


def test_query_inputs_take_the_form_embed_gives_items():
    assert search.query_input("a cat") == "a cat"
    assert search.query_input(image="cat.png") == {"image": "cat.png"}
    assert search.query_input("what is it", image="cat.png") == {"image": "cat.png", "text": "what is it"}
    assert search.query_input(video="clip.mp4") == {"video": "clip.mp4"}
    with pytest.raises(search.SearchError, match="not both"):
        search.query_input(image="a.png", video="b.mp4")


def test_cli_refuses_bad_queries_by_name(vectors_folder, tmp_path, capsys):
    folder, _ = vectors_folder
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    assert main(["search", str(folder), "--queries", str(bad)]) == 2
    assert "q.jsonl line 2" in capsys.readouterr().err
    assert main(["search", str(folder), "--image", str(tmp_path / "missing.png")]) == 2
    assert "missing.png' does not exist" in capsys.readouterr().err
    assert main(["search", str(folder)]) == 2
    assert "give a query" in capsys.readouterr().err


# ---- with a model: the CLI end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, sentence_model, fixture_model_dir):
    """12 texts, 4 images, an image + text and a clip, embedded with a prompt, in shards of 8 (float32)."""
    root = tmp_path_factory.mktemp("collection")
    images = _images(root)
    clip = write_clip(root, "clip", frames=2)
    inputs = [*TEXTS, *({"image": path} for path in images), {"image": images[0], "text": "a red square"}]
    inputs.append({"video": str(clip)})
    ids = [f"t{i}" for i in range(len(TEXTS))] + [f"i{i}" for i in range(len(images))] + ["it0", "v0"]
    sources = [*TEXTS, *images, images[0], str(clip)]
    vectors = sentence_model.encode(inputs, prompt=PROMPT, normalize_embeddings=True, batch_size=4)
    model = (fixture_model_dir, _fingerprint(sentence_model))
    folder = write_folder(root / "folder", ids, sources, vectors.astype(np.float32), model=model, prompt=PROMPT)
    queries = root / "queries.jsonl"
    rows = [{"text": text} for text in TEXTS] + [{"image": path} for path in images]
    rows += [{"image": images[0], "text": "a red square"}, {"video": str(clip)}]
    queries.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder, queries, ids, sources


@pytest.mark.slow
def test_every_item_queried_as_embedded_is_its_own_top1_through_the_cli(embedded, capsys):
    folder, queries, ids, sources = embedded
    assert main(["search", str(folder), "--queries", str(queries), "--top-k", "3", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["index"]["mode"] == "exact" and output["index"]["built"]
    tops = [result["hits"][0] for result in output["results"]]
    assert [top["id"] for top in tops] == ids and [top["source"] for top in tops] == sources
    # the query went through the folder's prompt: the same vector, cosine 1
    assert all(top["score"] > 0.9999 for top in tops), [top["score"] for top in tops]
    assert all(len(result["hits"]) == 3 for result in output["results"])


@pytest.mark.slow
def test_cli_text_output_shows_ids_scores_and_sources_in_every_mode(embedded, capsys):
    folder, _, _, sources = embedded
    image = sources[12]
    for mode in search.MODES:
        assert main(["search", str(folder), "--image", image, "--mode", mode, "--top-k", "2"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{mode} search, ") and lines[1] == f"query: image {image!r}"
        rank, score, item_id, source = lines[2].split()
        assert (rank, item_id, source) == ("1.", "i0", image) and abs(float(score) - 1) < 0.02
        assert len(lines) == 4
    assert main(["search", str(folder), "--video", sources[-1], "--top-k", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[2:] == ["v0", sources[-1]]
    assert main(["search", str(folder), "--query", TEXTS[3], "--truncate-dim", "16", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["index"]["dim"] == 16 and output["results"][0]["hits"][0]["id"] == "t3"


@pytest.mark.slow
def test_a_model_other_than_the_folders_is_refused_by_name(embedded, tiny_random_model_dir, capsys):
    folder, _, _, _ = embedded
    assert main(["search", str(folder), "--query", "a cat", "--model", str(tiny_random_model_dir)]) == 2
    error = capsys.readouterr().err
    assert f"model {str(tiny_random_model_dir)!r}" in error and "is not the model the folder was embedded with" in error


def test_without_usearch_the_error_names_the_extra(monkeypatch, tmp_path):
    vectors = clustered(10, 16, seed=8)
    folder = write_folder(tmp_path / "no-usearch", [str(i) for i in range(10)], ["s"] * 10, vectors)
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # `import usearch.index` fails
    with pytest.raises(search.SearchError, match=r"\[search\] extra"):
        search.search_folder(folder, vectors[:1])

"""`vlm2vec search`: top-k of an embedded folder for a text, image, image + text or video query, or a file of them.

The parser imports nothing heavy (`search` imports numpy at the top, the rest in its functions); `run_search` imports
the model stack and the index library when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vlm2vec_hf.retrieval.search import DEFAULT_RESCORE_MULTIPLIER, MODES


def add_search_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a `vlm2vec embed` folder (exact, int8 or binary + rescoring; the index is saved in FOLDER/index)",
    )
    parser.add_argument("folder", help="folder written by `vlm2vec embed`")
    parser.add_argument("--query", help="query text (alone, or with --image / --video)")
    media = parser.add_mutually_exclusive_group()
    media.add_argument("--image", help="query image file")
    media.add_argument("--video", help="query video file or frame folder")
    parser.add_argument(
        "--queries",
        help='file of queries: JSON lines of {"text", "image", "video"} (any of them; paths relative to the current '
        "folder), or a text file with one query text a line",
    )
    parser.add_argument("--model", help="model folder or Hub id (default: the manifest's); must be the folder's model")
    parser.add_argument("--top-k", type=int, default=10, help="results per query (default: 10)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="exact (float32), int8 or binary (1 bit a dimension) with rescoring; default: exact, or the stored "
        "precision's for an int8 / ubinary folder",
    )
    parser.add_argument(
        "--rescore-multiplier",
        type=int,
        help="quantized modes: rescore top-k x this many candidates (default: "
        + ", ".join(f"{mode} {DEFAULT_RESCORE_MULTIPLIER[mode]}" for mode in MODES[1:])
        + ")",
    )
    parser.add_argument("--truncate-dim", type=int, help="search the first D dimensions, renormalised (Matryoshka)")
    parser.add_argument("--batch-size", type=int, default=8, help="query embedding batch size")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def read_queries(args: argparse.Namespace) -> tuple[list, list[dict[str, str]]]:
    """The `encode` inputs and their descriptions (`{"text", "image", "video"}` as given) from the arguments."""
    from vlm2vec_hf.retrieval.search import SearchError, query_input

    given = [args.query, args.image, args.video]
    if args.queries and any(given):
        raise SearchError("give --queries or --query / --image / --video, not both")
    if args.queries:
        rows = _read_queries_file(Path(args.queries))
    elif any(given):
        rows = [{"text": args.query, "image": args.image, "video": args.video}]
    else:
        raise SearchError("give a query: --query, --image, --video or --queries")
    described = [{key: value for key, value in row.items() if value} for row in rows]
    for number, row in enumerate(described, 1):
        for key in ("image", "video"):
            if key in row and not Path(row[key]).exists():
                raise SearchError(f"query {number}: {key} {row[key]!r} does not exist")
    return [query_input(row.get("text"), row.get("image"), row.get("video")) for row in described], described


def _read_queries_file(path: Path) -> list[dict[str, str]]:
    from vlm2vec_hf.retrieval.search import SearchError

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise SearchError(f"{path} holds no query")
    if path.suffix != ".jsonl":
        return [{"text": line} for line in lines]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise SearchError(f"{path} line {number}: not JSON ({error})") from None
        unknown = set(row) - {"text", "image", "video"} if isinstance(row, dict) else None
        if unknown is None or unknown:
            raise SearchError(f'{path} line {number}: expected an object with "text", "image", "video", got {line}')
        rows.append(row)
    return rows


def run_search(args: argparse.Namespace) -> None:
    from vlm2vec_hf.retrieval import store
    from vlm2vec_hf.retrieval.search import (
        SearchError,
        embed_queries,
        load_query_model,
        search_folder,
        unfinished_shards,
    )

    if args.top_k < 1:
        raise SearchError(f"--top-k must be at least 1, got {args.top_k}")
    manifest = store.read_manifest(args.folder)
    if manifest is None:
        raise SearchError(f"{args.folder} has no {store.MANIFEST}: not a `vlm2vec embed` folder")
    inputs, described = read_queries(args)
    if missing := unfinished_shards(args.folder, manifest):
        print(
            f"vlm2vec search: warning: {len(missing)} of {manifest.num_shards} shards are not embedded yet "
            f"(first: {missing[0]}); searching the others",
            file=sys.stderr,
        )
    model = load_query_model(manifest, args.model, args.device)
    vectors = embed_queries(model, manifest, inputs, batch_size=args.batch_size)
    hits, prepared = search_folder(
        args.folder,
        vectors,
        mode=args.mode,
        top_k=args.top_k,
        rescore_multiplier=args.rescore_multiplier,
        truncate_dim=args.truncate_dim,
    )
    index = {"mode": prepared.mode, "dim": prepared.dim, "built": prepared.built, "score": prepared.score_kind}
    if args.json:
        results = [
            {"query": query, "hits": [{"rank": rank, **vars(hit)} for rank, hit in enumerate(found, 1)]}
            for query, found in zip(described, hits)
        ]
        print(json.dumps({"index": index, "results": results}, indent=2))
        return
    action = "built and saved" if prepared.built else "loaded"
    print(f"{prepared.mode} search, {prepared.dim} dimensions (index {action}); score: {prepared.score_kind}")
    for query, found in zip(described, hits):
        print("query: " + ", ".join(f"{key} {value!r}" for key, value in query.items()))
        for rank, hit in enumerate(found, 1):
            print(f"  {rank:>3}. {hit.score:.4f}  {hit.id}  {hit.source}")

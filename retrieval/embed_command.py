"""`vlm2vec embed`: the parser (no heavy import) and the run function (imports the engine)."""

from __future__ import annotations

import argparse

PRECISIONS = ("float32", "float16", "int8", "ubinary")  # store.PRECISIONS, without importing numpy at start-up


def add_embed_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed a collection (folder of images / frame folders / videos, text file, or table) into a folder of "
        "parquet shards; resumable; runs under torchrun / accelerate launch on many processes",
    )
    parser.add_argument(
        "input",
        help="a folder of images, frame folders or video files; a text file (one item per line); or a table "
        "(.parquet, .jsonl, .json, .csv, .tsv, or a Dataset.save_to_disk folder)",
    )
    parser.add_argument("--model", required=True, help="VLM2Vec model folder or Hub id")
    parser.add_argument("--out", required=True, help="output folder (created, or resumed when it has a manifest)")
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="instruction put before every item, as encode(prompt=...)")
    prompt.add_argument("--prompt-name", help="one of the model's saved prompts, as encode(prompt_name=...)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--truncate-dim", type=int, help="keep the first N dimensions (Matryoshka), renormalised")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="stored precision; int8 and ubinary through sentence-transformers' quantize_embeddings (int8 ranges "
        "computed once from --calibration-size items and saved in calibration.safetensors)",
    )
    parser.add_argument("--calibration-size", type=int, default=1000, help="items for the int8 ranges")
    parser.add_argument("--shard-size", type=int, default=1000, help="items per shard (the unit of resuming)")
    parser.add_argument("--device", help="e.g. cpu, cuda:0 (default: each rank's local GPU, else CPU)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out items that cannot be embedded (listed in bad_items.jsonl) instead of stopping",
    )
    table = parser.add_argument_group("tables")
    table.add_argument("--text-column", help="default: the first of text, caption, sentence, query, content, title")
    table.add_argument("--image-column", help="default: the first of image, image_path, img_path, img, image_file")
    table.add_argument("--video-column", help="default: the first of video, video_path, clip, frames, video_file")
    table.add_argument("--id-column", help="default: id when there is one, else the row number")
    table.add_argument("--media-root", help="folder relative media paths start from (default: the table's folder)")


def run_embed(args: argparse.Namespace) -> None:
    from vlm2vec_hf.distributed import launched_ranks
    from vlm2vec_hf.retrieval.embed import EmbedOptions, embed_collection
    from vlm2vec_hf.retrieval.inputs import read_collection

    collection = read_collection(
        args.input, args.text_column, args.image_column, args.video_column, args.id_column, args.media_root
    )
    options = EmbedOptions(
        prompt=args.prompt,
        prompt_name=args.prompt_name,
        batch_size=args.batch_size,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
        shard_size=args.shard_size,
        device=args.device,
        skip_bad=args.skip_bad,
        calibration_size=args.calibration_size,
    )
    report = embed_collection(args.model, collection, args.out, options)
    if launched_ranks().is_main:
        print(
            f"Embedded {report.items_embedded} items in {report.shards_embedded} shard(s) on {report.world_size} "
            f"process(es) into {report.out} ({report.shards_before} of {report.num_shards} shards were already "
            f"there; {report.num_items} items in all)"
        )
        if report.bad_items:
            print(f"Skipped {len(report.bad_items)} bad item(s), listed in {report.out}/bad_items.jsonl")

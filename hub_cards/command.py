"""`vlm2vec push`: upload a model folder to a Hub repo and print how to load it."""

from __future__ import annotations

import argparse
import json


def add_push_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder to a Hugging Face Hub repo (created if missing); safetensors only",
        description="Upload a VLM2Vec model folder to the Hub (HF_ENDPOINT selects another endpoint). Only the files "
        "a repo needs go up (weights, configs, code, tokenizer, card, assets/); checkpoints and eval caches stay. "
        "A push that failed half-way finishes when run again.",
    )
    parser.add_argument("folder", help="model folder (vlm2vec convert / init / train output)")
    parser.add_argument("repo_id", help="namespace/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="branch to push to (created from main if missing; default: main)")
    parser.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or the stored login)")
    parser.add_argument("--commit-message", help="default: 'Upload VLM2Vec model'")
    parser.add_argument(
        "--eval-results",
        help="a `vlm2vec eval` results.json whose scores go into the pushed card's model-index "
        "(default: <folder>/eval/results.json when present)",
    )


def load_snippet(repo_id: str, revision: str | None = None) -> str:
    """The one line that loads the pushed model with sentence-transformers."""
    revision_arg = f", revision={json.dumps(revision)}" if revision and revision != "main" else ""
    return f"SentenceTransformer({json.dumps(repo_id)}, trust_remote_code=True{revision_arg})"


def run_push(args: argparse.Namespace) -> None:
    from vlm2vec_hf.hub_cards.push import push_model_folder

    commit_url = push_model_folder(
        args.folder,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        eval_results=args.eval_results,
    )
    repo_url = commit_url.rsplit("/commit/", 1)[0]
    where = f" (branch {args.revision})" if args.revision else ""
    print(f"Pushed {args.folder} to {repo_url}{where}{' [private]' if args.private else ''}")
    print(f"Commit: {commit_url}")
    print("Load it with:")
    print("  from sentence_transformers import SentenceTransformer")
    print(f"  model = {load_snippet(args.repo_id, args.revision)}")

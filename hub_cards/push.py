"""Push a VLM2Vec model folder to the Hugging Face Hub (or any Hub-compatible endpoint).

`push_model_folder(folder, "org/name")` checks the folder first (without any request), then creates the repo
(`exist_ok`), the branch when a `revision` is given, and uploads the files a Hub repo needs in one commit with
`HfApi.upload_folder(allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS)`; `check_model_folder` lists the
same files with huggingface_hub's own filter (`filter_repo_objects`). The code files a folder must carry are the
registry's (`backbones.code_files()`). With evaluation results (`eval/results.json`), a second commit writes the card
with them in its `model-index`. The local folder is only read. huggingface_hub's preupload step skips every file whose
content the repo already stores, so a push that failed half-way is finished by running the same push again.

Errors from the Hub are re-raised as `HubPushError` (an `OSError`) with a message that says what to do; problems with
the folder itself as `ModelFolderError` (a `ValueError`), before anything is sent.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from vlm2vec_hf.modeling_vlm2vec.backbones import code_files
from vlm2vec_hf.st_module import MODULE_FILE

logger = logging.getLogger(__name__)

#: Where `vlm2vec eval` writes a model folder's results by default; a push puts them in the card's model-index.
DEFAULT_EVAL_RESULTS = "eval/results.json"
#: A folder needs one of these: a full model's config or an adapter-only (LoRA/DoRA) run's.
CONFIG_FILES = ("config.json", "adapter_config.json")
#: What a Hub repo of this project needs (huggingface_hub patterns: `*` spans folders): weights, configs, code,
#: tokenizer, card, chat template, and everything under `assets/`.
ALLOW_PATTERNS = ("*.safetensors", "*.json", "*.py", "*.md", "*.jinja", "*.txt", "assets/")
#: Pickle formats: loading them can run arbitrary code, so a folder holding one as weights is refused.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
#: Pickles the Trainer writes beside the weights (run state, not weights): left out of the upload, not refused.
TRAINER_STATE_PATTERNS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
#: Folders of a run or model folder that never go to the Hub, at any depth: checkpoints, eval reports and caches,
#: logs, bytecode; and hidden files and folders.
SKIPPED_PATTERNS = (
    *(pattern for name in ("checkpoint-*", "eval", "runs", "__pycache__") for pattern in (f"{name}/", f"*/{name}/")),
    ".*",
    "*/.*",
)
#: Never uploaded, wherever they are: local caches (`vlm2vec eval --cache-dir`) and pickles.
IGNORE_PATTERNS = (*SKIPPED_PATTERNS, "*.sqlite", "*.sqlite3", "*.db", *PICKLE_PATTERNS)


class ModelFolderError(ValueError):
    """The folder is not a complete, safe-to-publish model folder (raised before any request)."""


class HubPushError(OSError):
    """The Hub refused or could not be reached; the message names the endpoint and what to check."""


def _folder_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every file under `folder` (as `upload_folder` lists them)."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.glob("**/*") if path.is_file())


def uploaded_files(folder: str | os.PathLike) -> list[str]:
    """The files of `folder` that a push uploads: what `upload_folder(allow_patterns=ALLOW_PATTERNS,
    ignore_patterns=IGNORE_PATTERNS)` keeps, by huggingface_hub's own filter."""
    return list(
        filter_repo_objects(
            _folder_files(Path(folder)), allow_patterns=list(ALLOW_PATTERNS), ignore_patterns=list(IGNORE_PATTERNS)
        )
    )


def _pickle_weights(folder: Path) -> list[str]:
    """Pickle files outside the skipped folders, other than the Trainer's run state."""
    trainer_state = [*TRAINER_STATE_PATTERNS, *(f"*/{pattern}" for pattern in TRAINER_STATE_PATTERNS)]
    ignored = [*SKIPPED_PATTERNS, *trainer_state]
    return list(
        filter_repo_objects(_folder_files(folder), allow_patterns=list(PICKLE_PATTERNS), ignore_patterns=ignored)
    )


def required_code_files() -> tuple[str, ...]:
    """The code files every model folder carries: the registry's (entry points, registry, every family's shipped
    files) and the sentence-transformers module."""
    return (*code_files(), MODULE_FILE)


def check_model_folder(folder: str | os.PathLike) -> list[str]:
    """Check that `folder` is a complete model folder without pickle weights; return the files a push uploads.

    Raises:
        ModelFolderError: naming every missing file, or the pickle files found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    pickles = _pickle_weights(folder)
    if pickles:
        raise ModelFolderError(
            f"refusing to push {folder}: it holds pickle weights {pickles}, which run arbitrary code when loaded. "
            "Save the weights as safetensors (`vlm2vec convert`, `save_pretrained`) and remove the pickle files."
        )
    files = uploaded_files(folder)
    top_level = {path for path in files if "/" not in path}
    missing = ["modules.json"] if "modules.json" not in top_level else []
    missing += [name for name in required_code_files() if name not in top_level]
    if not top_level & set(CONFIG_FILES):
        missing.append(" or ".join(CONFIG_FILES))
    if not any(name.endswith(".safetensors") for name in top_level):
        missing.append("weights (*.safetensors)")
    if missing:
        raise ModelFolderError(
            f"{folder} is not a complete VLM2Vec model folder; missing: {', '.join(missing)}. "
            "`vlm2vec convert`, `vlm2vec init` and `vlm2vec train` write complete folders."
        )
    return files


def _card_with_results(folder: Path, repo_id: str, eval_results: str | os.PathLike | None):
    """The card to push in place of the folder's README.md when there are evaluation results, else None."""
    path = Path(eval_results) if eval_results is not None else folder / DEFAULT_EVAL_RESULTS
    if eval_results is None and not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(results, dict) or not isinstance(results.get("datasets"), dict):
            raise ValueError("not a `vlm2vec eval` results JSON (no 'datasets' mapping)")
    except (OSError, ValueError) as error:
        if eval_results is not None:  # asked for: an error; found by default: the card is pushed as it is
            raise ModelFolderError(f"cannot use the evaluation results {path}: {error}") from None
        logger.warning("%s: %s; the card is pushed without evaluation results", path, error)
        return None
    from vlm2vec_hf.hub_cards.card import card_with_eval_results

    return card_with_eval_results(folder, results, model_name=repo_id.split("/")[-1])


def _warn_if_adapter_needs_local_base(folder: Path) -> None:
    """An adapter-only folder names its base model; a local path there cannot be resolved by anyone else."""
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return
    base = json.loads(config_path.read_text()).get("base_model_name_or_path") or ""
    if os.path.isabs(base) or Path(base).is_dir():
        logger.warning(
            "%s is an adapter whose base model is the local path %s: loading the pushed repo needs that path. "
            "Push a merged folder instead (`vlm2vec merge`, or `merge: true` in training).",
            folder,
            base,
        )


def _network_error_types() -> tuple[type[BaseException], ...]:
    """Transport errors of whichever httpx flavour the installed huggingface_hub uses (httpx2 from 2.x on)."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            types.append(importlib.import_module(module_name).TransportError)
    return tuple(types)


NETWORK_ERRORS = _network_error_types()


def _http_error_message(error: HfHubHTTPError, endpoint: str, repo_id: str) -> str:
    status = error.response.status_code
    server = f" (server: {error.server_message})" if error.server_message else ""
    if status == 401:
        return f"authentication failed at {endpoint}: check --token / HF_TOKEN{server}"
    if status == 403:
        namespace = repo_id.split("/", 1)[0]
        return (
            f"no write access to the namespace '{namespace}' at {endpoint} with this token: push to your own user or "
            f"an organisation you can write to, or use a token with write permission{server}"
        )
    return (
        f"pushing to {repo_id} at {endpoint} failed with HTTP {status}{server}. Files already uploaded stay on the "
        f"Hub: run the same push again to finish it. ({error})"
    )


@contextlib.contextmanager
def _explained_hub_errors(endpoint: str, repo_id: str) -> Iterator[None]:
    """Re-raise huggingface_hub / transport errors as `HubPushError` with an actionable message."""
    try:
        yield
    except OfflineModeIsEnabled as error:
        raise HubPushError(f"cannot push to {endpoint}: HF_HUB_OFFLINE is set; unset it to push") from error
    except HfHubHTTPError as error:
        raise HubPushError(_http_error_message(error, endpoint, repo_id)) from error
    except NETWORK_ERRORS as error:
        raise HubPushError(
            f"cannot reach the Hub at {endpoint} ({type(error).__name__}: {error}): check the network and HF_ENDPOINT"
        ) from error


def _check_repo_id(repo_id: str) -> None:
    validate_repo_id(repo_id)
    if repo_id.count("/") != 1:
        raise ValueError(f"repo id must be 'namespace/name' (your user or an organisation), got {repo_id!r}")


def _refuse_public_repo(api: HfApi, repo_id: str) -> None:
    """`create_repo(private=True, exist_ok=True)` leaves an existing public repo public; never push there silently."""
    if not api.model_info(repo_id).private:
        raise HubPushError(
            f"{repo_id} already exists at {api.endpoint} and is public; --private does not change an existing repo. "
            f"Make it private first (HfApi().update_repo_settings({repo_id!r}, private=True)) or push without "
            "--private."
        )


def push_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    eval_results: str | os.PathLike | None = None,
) -> str:
    """Upload a model folder to the Hub repo `repo_id` (created if missing); returns the (last) commit URL.

    With evaluation results (`eval_results`, default: the folder's `eval/results.json` that `vlm2vec eval` writes,
    when present), the pushed card carries them in its `model-index` ([`card_with_eval_results`]): a second commit
    replaces the folder's `README.md` on the Hub, the local one is left as it is.

    Args:
        folder: A complete model folder (`check_model_folder`); it is only read.
        repo_id: `namespace/name`.
        token: Hub token with write access; default: `HF_TOKEN` or the stored login.
        private: Create the repo private (an existing public repo is refused rather than published to).
        revision: Branch to push to; created from `main` when missing. Default: `main`.
        commit_message: Default: "Upload VLM2Vec model".
        endpoint: Hub URL; default: `HF_ENDPOINT` / the public Hub.
        eval_results: A `vlm2vec eval` results JSON for the card's `model-index`.

    Raises:
        ModelFolderError: the folder is incomplete or holds pickle weights (nothing was sent).
        HubPushError: authentication, permission or network problems, or a failed upload (run it again).
    """
    folder = Path(folder)
    check_model_folder(folder)
    _check_repo_id(repo_id)
    card = _card_with_results(folder, repo_id, eval_results)
    _warn_if_adapter_needs_local_base(folder)
    api = HfApi(endpoint=endpoint, token=token)
    if token is None and get_token() is None:
        raise HubPushError(f"no Hub token for {api.endpoint}: pass --token or set HF_TOKEN (or `hf auth login`)")
    with _explained_hub_errors(api.endpoint, repo_id):
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if private:
            _refuse_public_repo(api, repo_id)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or "Upload VLM2Vec model",
            allow_patterns=list(ALLOW_PATTERNS),
            ignore_patterns=list(IGNORE_PATTERNS),
        )
        if card is not None:
            commit = api.upload_file(
                path_or_fileobj=str(card).encode("utf-8"),
                path_in_repo="README.md",
                repo_id=repo_id,
                revision=revision,
                commit_message="Model card with the evaluation results (model-index)",
            )
    return commit.commit_url

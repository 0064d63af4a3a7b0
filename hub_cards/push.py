"""Push a VLM2Vec model folder to the Hugging Face Hub (or any Hub-compatible endpoint).

`push_model_folder(folder, "org/name")` checks the folder first (without any request), then creates the repo
(`exist_ok`), the branch when a `revision` is given, and uploads the files a Hub repo needs in one commit with
`HfApi.upload_folder`. The local folder is only read. huggingface_hub's preupload step skips every file whose content
the repo already stores, so a push that failed half-way is finished by running the same push again.

Errors from the Hub are re-raised as `HubPushError` (an `OSError`) with a message that says what to do; problems with
the folder itself as `ModelFolderError` (a `ValueError`), before anything is sent.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import importlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from vlm2vec_hf.st_module import MODULE_FILE

logger = logging.getLogger(__name__)

#: The code files loading enters a folder by (`auto_map` targets, the sentence-transformers module). Which other code
#: files a folder needs is read from its own code: a folder written before a backbone family was added lacks that
#: family's file, and needs it no more than it did then.
ENTRY_CODE_FILES = ("configuration_vlm2vec.py", "modeling_vlm2vec.py", "processing_vlm2vec.py", MODULE_FILE)
_RELATIVE_IMPORT = re.compile(r"^\s*from \.(\w+) import", re.MULTILINE)
#: A folder needs one of these: a full model's config or an adapter-only (LoRA/DoRA) run's.
CONFIG_FILES = ("config.json", "adapter_config.json")
#: File types a Hub repo of this project needs; everything under `assets/` goes too.
UPLOADED_SUFFIXES = (".safetensors", ".json", ".py", ".md", ".jinja", ".txt")
ASSETS_DIR = "assets"
#: Never uploaded, wherever they are: local caches (`vlm2vec eval --cache-dir`).
NEVER_UPLOADED = ("*.sqlite", "*.sqlite3", "*.db")
#: Pickle formats: loading them can run arbitrary code, so a folder holding one as weights is refused.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
#: Pickles the Trainer writes beside the weights (run state, not weights): left out of the upload, not refused.
TRAINER_STATE_PATTERNS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
#: Folders of a run or model folder that never go to the Hub: checkpoints, eval reports/caches, logs, hidden dirs.
SKIPPED_DIRS = ("checkpoint-*", "eval", "runs", "__pycache__", ".*")


class ModelFolderError(ValueError):
    """The folder is not a complete, safe-to-publish model folder (raised before any request)."""


class HubPushError(OSError):
    """The Hub refused or could not be reached; the message names the endpoint and what to check."""


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _walk_files(folder: Path) -> Iterator[str]:
    """Relative POSIX paths of the files under `folder`, outside the skipped folders."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _matches(d, SKIPPED_DIRS))
        for name in sorted(files):
            yield (Path(root) / name).relative_to(folder).as_posix()


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _is_uploaded(path: str) -> bool:
    name = _basename(path)
    if name.startswith(".") or _matches(name, NEVER_UPLOADED + PICKLE_PATTERNS):
        return False
    return path.startswith(f"{ASSETS_DIR}/") or name.endswith(UPLOADED_SUFFIXES)


def _is_pickle_weights(path: str) -> bool:
    name = _basename(path)
    return _matches(name, PICKLE_PATTERNS) and not _matches(name, TRAINER_STATE_PATTERNS)


def check_model_folder(folder: str | os.PathLike) -> list[str]:
    """Check that `folder` is a complete model folder without pickle weights; return the files a push uploads.

    Raises:
        ModelFolderError: naming every missing file, or the pickle files found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    paths = list(_walk_files(folder))
    top_level = {path for path in paths if "/" not in path}
    pickles = [path for path in paths if _is_pickle_weights(path)]
    if pickles:
        raise ModelFolderError(
            f"refusing to push {folder}: it holds pickle weights {pickles}, which run arbitrary code when loaded. "
            "Save the weights as safetensors (`vlm2vec convert`, `save_pretrained`) and remove the pickle files."
        )
    missing = ["modules.json"] if "modules.json" not in top_level else []
    missing += missing_code_files(folder, top_level)
    if not top_level & set(CONFIG_FILES):
        missing.append(" or ".join(CONFIG_FILES))
    if not any(name.endswith(".safetensors") for name in top_level):
        missing.append("weights (*.safetensors)")
    if missing:
        raise ModelFolderError(
            f"{folder} is not a complete VLM2Vec model folder; missing: {', '.join(missing)}. "
            "`vlm2vec convert`, `vlm2vec init` and `vlm2vec train` write complete folders."
        )
    return [path for path in paths if _is_uploaded(path)]


def missing_code_files(folder: Path, top_level: set[str]) -> list[str]:
    """The code files `folder` lacks: the entry files, then every file the folder's own code imports relatively
    (`from .backbone_phi3_v import ...`, followed through the files present), each named with its importer."""
    missing, seen = [], set()
    queue = [(name, None) for name in ENTRY_CODE_FILES]
    while queue:
        name, importer = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name not in top_level:
            missing.append(f"{name} (imported by {importer})" if importer else name)
            continue
        imported = _RELATIVE_IMPORT.findall((folder / name).read_text(encoding="utf-8"))
        queue += [(f"{module}.py", name) for module in imported]
    return missing


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
) -> str:
    """Upload a model folder to the Hub repo `repo_id` (created if missing); returns the commit URL.

    Args:
        folder: A complete model folder (`check_model_folder`); it is only read.
        repo_id: `namespace/name`.
        token: Hub token with write access; default: `HF_TOKEN` or the stored login.
        private: Create the repo private (an existing public repo is refused rather than published to).
        revision: Branch to push to; created from `main` when missing. Default: `main`.
        commit_message: Default: "Upload VLM2Vec model".
        endpoint: Hub URL; default: `HF_ENDPOINT` / the public Hub.

    Raises:
        ModelFolderError: the folder is incomplete or holds pickle weights (nothing was sent).
        HubPushError: authentication, permission or network problems, or a failed upload (run it again).
    """
    folder = Path(folder)
    files = check_model_folder(folder)
    _check_repo_id(repo_id)
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
            # The exact list chosen above; upload_folder would otherwise glob `*` across folders.
            allow_patterns=[glob.escape(path) for path in files],
        )
    return commit.commit_url

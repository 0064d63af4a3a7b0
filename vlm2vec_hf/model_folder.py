"""Writing a complete, self-contained VLM2Vec model folder, and loading it back.

A model folder holds everything a Hub repository needs: `config.json` (with `auto_map`), `model.safetensors`,
the `modeling_vlm2vec` code files, the processor files (tokenizer, PIL image processor bounds, prompt format),
the sentence-transformers files (`modules.json`, `config_sentence_transformers.json` with the prompts) and the
`vlm2vec_st.py` module, all at the root. Both `AutoModel.from_pretrained(folder, trust_remote_code=True)` and
`SentenceTransformer(folder, trust_remote_code=True)` open it in a process that never imports this project.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlm2vec_hf.modeling_vlm2vec.backbones import DEFAULT_MODEL_TYPE, get_family

# torch, transformers and sentence-transformers load in the functions that use them, so that importing this module
# (the CLI's parser does, through the conversion presets) stays instant.
if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel, VLM2VecProcessor


def make_processor(
    tokenizer: PreTrainedTokenizerBase,
    image_processor_source: str | os.PathLike | None = None,
    *,
    prompt_format: str = "v1",
    max_length: int | None = None,
    image_resize: tuple[int, int] | None = None,
    backbone_model_type: str = DEFAULT_MODEL_TYPE,
    backbone_family: str | None = None,
    **image_processor_options: Any,
) -> VLM2VecProcessor:
    """A `VLM2VecProcessor` with the image processor of `image_processor_source` (or the family's defaults), as the
    backbone family (`backbone_family` by name, else that of `backbone_model_type`) builds it with
    `image_processor_options` (the family's `processor_options`, by name), sampling the family's
    `default_num_frames` per video where it declares them. An option the family does not take is a ValueError naming
    it."""
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecProcessor

    family = get_family(backbone_model_type, backbone_family)
    family.check_image_processor_options(image_processor_options)
    tokenizer.chat_template = None  # VLM2Vec feeds raw prompt strings; a backbone's chat template would mislead
    image_processor = family.conversion_image_processor(image_processor_source, **image_processor_options)
    frames = {"num_frames": family.default_num_frames} if family.default_num_frames else {}
    return VLM2VecProcessor(
        image_processor,
        tokenizer,
        prompt_format=prompt_format,
        max_length=max_length,
        image_resize=image_resize,
        backbone_model_type=backbone_model_type,
        backbone_family=backbone_family,
        **frames,
    )


def write_model_folder(
    model: VLM2VecModel,
    processor: VLM2VecProcessor,
    out_dir: str | os.PathLike,
    *,
    prompts: dict[str, str] | None = None,
    overwrite: bool = False,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Save `model` + `processor` as a model folder that transformers and sentence-transformers load.

    The folder is written next to `out_dir` first and moved into place at the end, so an existing folder is never
    left half-written; an existing non-empty `out_dir` is replaced only with `overwrite=True`. It gets the mode a
    plain `mkdir` gives (0755 under umask 022, 0775 under 002), so a folder on a shared disk is readable there.
    `verify(staging_folder)`, if given, runs on the complete written folder before the move: an error it raises
    leaves `out_dir` as it was (an existing folder untouched) and no staging folder behind.
    """
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.st_module import VLM2VecEncoder, default_prompts

    out_dir = Path(out_dir)
    restore_interrupted_replace(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_folder(out_dir)
    try:
        encoder = VLM2VecEncoder(model=model, processor=processor)
        sentence_model = SentenceTransformer(
            modules=[encoder],
            prompts=prompts if prompts is not None else default_prompts(),
            device=str(model.device),
        )
        sentence_model.similarity_fn_name = "cosine"
        sentence_model.save(str(staging), create_model_card=False)
        _point_modules_json_at_root_file(staging)
        apply_umask_modes(staging)
        if verify is not None:
            verify(staging)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def make_staging_folder(target: str | os.PathLike) -> Path:
    """A new, empty folder `.<name>.<random>` beside `target`, to write in and then move onto `target`.

    Made with `os.mkdir`, so its mode is the umask's (and a default ACL or setgid bit of the parent applies), as for
    any folder the user makes; `tempfile.mkdtemp` would make it 0700, which the moved folder would keep.
    """
    target = Path(target)
    for _ in range(100):
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        try:
            os.mkdir(staging)
        except FileExistsError:
            continue
        return staging
    raise FileExistsError(f"no free staging folder name beside {target}")


def apply_umask_modes(folder: str | os.PathLike) -> None:
    """Give everything in `folder` the modes the umask gives: sub-folders `folder`'s own (so `folder` must have been
    made by `os.mkdir` / `Path.mkdir`, never `tempfile.mkdtemp`), files that without the execute bits (0644 under
    umask 022, 0664 under 002).

    Needed for the weights: safetensors 0.8 writes through a temporary file that is always 0600 (safetensors#782),
    so `model.safetensors` would be unreadable to everyone else while `config.json` beside it is not.
    """
    folder_mode = stat.S_IMODE(os.stat(folder).st_mode) & 0o777
    file_mode = folder_mode & 0o666
    for root, dirs, files in os.walk(folder):  # symbolic links are left alone (chmod would follow them)
        for name in dirs:
            path = os.path.join(root, name)
            info = os.lstat(path)
            current = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode) and current & 0o777 != folder_mode:
                os.chmod(path, (current & ~0o777) | folder_mode)  # keeps a setgid bit inherited from the parent
        for name in files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                wanted = file_mode | (stat.S_IMODE(info.st_mode) & 0o111 & folder_mode)
                if stat.S_IMODE(info.st_mode) != wanted:
                    os.chmod(path, wanted)


def _point_modules_json_at_root_file(folder: Path) -> None:
    # Saved from this installed package, the module's type would be `vlm2vec_hf.st_module...`, which a process
    # without this project cannot import; the copy at the root is what a Hub repository must use.
    from vlm2vec_hf.st_module import MODULE_TYPE

    modules_path = folder / "modules.json"
    modules = json.loads(modules_path.read_text())
    modules[0]["type"] = MODULE_TYPE
    modules_path.write_text(json.dumps(modules, indent=2))


def _backup_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def restore_interrupted_replace(target: str | os.PathLike) -> bool:
    """Put back a folder that an interrupted replace left at `.<name>.old` (killed between its two moves, so
    `target` is missing); True if it did. The write that follows then sees the user's folder where it was."""
    target = Path(target)
    backup = _backup_of(target)
    if backup.is_dir() and not target.exists():
        os.replace(backup, target)
        return True
    return False


def _replace_folder(new: Path, target: Path) -> None:
    """Move `new` onto `target`, keeping the old `target` at `.<name>.old` until the new one is in place."""
    restore_interrupted_replace(target)
    if not target.exists():
        os.replace(new, target)
        return
    backup = _backup_of(target)
    shutil.rmtree(backup, ignore_errors=True)  # `target` exists, so this is a stale copy, never the only one
    os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def load_sentence_transformer(folder_or_repo: str | os.PathLike, **kwargs) -> SentenceTransformer:
    """`SentenceTransformer(folder_or_repo, trust_remote_code=True, **kwargs)`: the code it runs is the folder's."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder_or_repo), trust_remote_code=True, **kwargs)

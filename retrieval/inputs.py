"""Collections `vlm2vec embed` reads: a folder of images, frame folders or video files; a text file; a `datasets` table.

Every reader returns a [`Collection`]: items in a fixed order with unique string ids.

- **Folder**: each image file and each video file directly in it is an item, and so is each sub-folder (a clip of
  frame images); ids are the names relative to the folder, in sorted order. Hidden entries and files of other types
  are left out.
- **Text file** (any other file that is not a table): one text per line; the id is the line number (from 1); blank
  lines are left out (their numbers are not reused, so ids still point at lines).
- **Table** (`.parquet`, `.jsonl`, `.json`, `.csv`, `.tsv`, or a folder written by `Dataset.save_to_disk`): text,
  image and video columns (named by the caller or found by name, see `TEXT_COLUMNS` ...); the id is the `id` column
  when there is one, else the row number (from 0). An empty text beside an image or a clip is that media alone.
  Relative media paths are resolved against `media_root`, else the table's folder. Media are read from files: a
  `datasets` Image / Video cell counts by its path (one that holds bytes must name an existing file).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlm2vec_hf.distributed import estimate_cost
from vlm2vec_hf.st_module.vlm2vec_st import IMAGE_FILE_EXTENSIONS, VIDEO_FILE_EXTENSIONS

TABLE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv"}
# Column names tried, in order, when the caller names none.
TEXT_COLUMNS = ("text", "caption", "sentence", "query", "content", "title")
IMAGE_COLUMNS = ("image", "image_path", "img_path", "img", "image_file")
VIDEO_COLUMNS = ("video", "video_path", "clip", "frames", "video_file")
ID_COLUMNS = ("id",)


@dataclass(frozen=True)
class CollectionItem:
    """One item: its id, and its text, image path and clip (frame folder or video file) path; `""` where none."""

    id: str
    text: str = ""
    image: str = ""
    video: str = ""

    @property
    def source(self) -> str:
        """What the item is, for people: its media path, else its text."""
        return self.video or self.image or self.text

    def encoder_input(self):
        """The `SentenceTransformer.encode` input: the text, or `{"image"|"video": path[, "text"]}`, as evaluation
        items are given (`evaluator.encoder_input`)."""
        from vlm2vec_hf.evaluation.evaluator import encoder_input

        return encoder_input((self.text, self.image, self.video))

    def cost(self) -> float:
        """Estimated LLM tokens (`distributed.estimate_cost`)."""
        return estimate_cost(self.text, num_images=int(bool(self.image)), num_clips=int(bool(self.video)))

    def problem(self) -> str | None:
        """What makes this item unembeddable without opening its files (a missing path, nothing to embed), else None."""
        if not (self.text.strip() or self.image or self.video):
            return "empty item: no text, image or video"
        if self.image and not os.path.isfile(self.image):
            return f"image file not found: {self.image}"
        if self.video and not os.path.exists(self.video):
            return f"video not found: {self.video}"
        return None


@dataclass
class Collection:
    """Items in order, with where they came from (`source`) and what kind of input it was (`kind`)."""

    source: str
    kind: str
    items: list[CollectionItem]
    root: str = ""  # media paths are hashed relative to it, so a moved collection keeps its digest

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    def content_digest(self) -> str:
        """SHA-256 of every item's id, text and media paths, in order (changes when any item changes)."""
        digest = hashlib.sha256()
        for item in self.items:
            media = [os.path.relpath(path, self.root or ".") if path else "" for path in (item.image, item.video)]
            digest.update(json.dumps([item.id, item.text, *media]).encode())
        return digest.hexdigest()


def read_collection(
    path: str | os.PathLike,
    text_column: str | None = None,
    image_column: str | None = None,
    video_column: str | None = None,
    id_column: str | None = None,
    media_root: str | os.PathLike | None = None,
) -> Collection:
    """The collection at `path` (see the module docstring for the kinds and their ids)."""
    path = Path(path).absolute()
    columns = (text_column, image_column, video_column, id_column)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir() and not _is_saved_dataset(path):
        if any(columns):
            raise ValueError(f"{path} is a media folder: --text-column / --image-column / ... apply to tables only")
        return read_media_folder(path)
    if path.is_dir() or path.suffix.lower() in TABLE_BUILDERS:
        return read_table(path, text_column, image_column, video_column, id_column, media_root)
    if any(columns):
        raise ValueError(f"{path} is a text file: --text-column / --image-column / ... apply to tables only")
    return read_text_file(path)


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()


def read_media_folder(folder: Path) -> Collection:
    """Image files, video files and frame folders directly in `folder`, by sorted name."""
    items = []
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.name.startswith("."):
            continue
        name, suffix = entry.name, entry.suffix.lower()
        if entry.is_dir():
            items.append(CollectionItem(name, video=str(entry)))
        elif suffix in IMAGE_FILE_EXTENSIONS:
            items.append(CollectionItem(name, image=str(entry)))
        elif suffix in VIDEO_FILE_EXTENSIONS:
            items.append(CollectionItem(name, video=str(entry)))
    if not items:
        raise ValueError(f"{folder} holds no image file, video file or frame folder")
    return Collection(str(folder), "folder", items, root=str(folder))


def read_text_file(path: Path) -> Collection:
    """One item per non-blank line, its id the line number (from 1)."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    items = [CollectionItem(str(number), text=line) for number, line in enumerate(lines, 1) if line.strip()]
    if not items:
        raise ValueError(f"{path} holds no non-blank line")
    return Collection(str(path), "text", items)


def _pick(wanted: str | None, candidates: Sequence[str], names: Sequence[str], role: str, table: Path) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"{table} has no {role} column {wanted!r}; its columns: {', '.join(names)}")
        return wanted
    return next((name for name in candidates if name in names), None)


def _media_path(value, root: Path, where: str) -> str:
    """A table cell as a media path relative to `root`: a string, or a `datasets` Image / Video cell's `path`. A cell
    that holds the media's bytes counts only when its path names an existing file (the pixels are read from there)."""
    embedded = False
    if isinstance(value, dict):  # Image(decode=False) / Video(decode=False): {"path", "bytes"}
        embedded = bool(value.get("bytes"))
        value = value.get("path")
    path = "" if not value else str(value) if os.path.isabs(value) else str(root / value)
    if embedded and not os.path.isfile(path):
        raise ValueError(
            f"{where} holds media bytes, and its path {value!r} names no file under {root}: embed reads media from "
            "files; give --media-root the folder of the original files, or a column of paths"
        )
    return path


def read_table(
    path: Path,
    text_column: str | None = None,
    image_column: str | None = None,
    video_column: str | None = None,
    id_column: str | None = None,
    media_root: str | os.PathLike | None = None,
) -> Collection:
    """A `datasets`-loadable table (a data file, or a `save_to_disk` folder) as items."""
    import datasets

    if path.is_dir():
        table = datasets.load_from_disk(str(path))
        if isinstance(table, datasets.DatasetDict):
            raise ValueError(f"{path} is a DatasetDict ({', '.join(table)}): give one split's folder")
        root = Path(media_root).absolute() if media_root else path
    else:
        builder = TABLE_BUILDERS[path.suffix.lower()]
        options = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
        root = Path(media_root).absolute() if media_root else path.parent
    names = table.column_names
    text = _pick(text_column, TEXT_COLUMNS, names, "text", path)
    image = _pick(image_column, IMAGE_COLUMNS, names, "image", path)
    video = _pick(video_column, VIDEO_COLUMNS, names, "video", path)
    ids = _pick(id_column, ID_COLUMNS, names, "id", path)
    if not (text or image or video):
        raise ValueError(
            f"{path}: no text, image or video column found among {', '.join(names)}; name one with --text-column, "
            "--image-column or --video-column"
        )
    for column in (image, video):  # paths, not decoded pixels
        if column and isinstance(table.features[column], (datasets.Image, datasets.Video)):
            table = table.cast_column(column, type(table.features[column])(decode=False))
    items = []
    seen: set[str] = set()
    for row_number, row in enumerate(table.select_columns([c for c in (text, image, video, ids) if c])):
        item_id = str(row[ids]) if ids else str(row_number)
        if item_id in seen:
            raise ValueError(f"{path}: id {item_id!r} appears twice (row {row_number}); ids must be unique")
        seen.add(item_id)
        items.append(
            CollectionItem(
                item_id,
                text=str(row[text] or "") if text else "",
                image=_media_path(row[image], root, f"{path}: row {row_number}: the image column") if image else "",
                video=_media_path(row[video], root, f"{path}: row {row_number}: the video column") if video else "",
            )
        )
    if not items:
        raise ValueError(f"{path} has no rows")
    return Collection(str(path), "table", items, root=str(root))

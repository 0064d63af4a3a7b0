"""MMEB-V2's task tables (`tables/mmeb_prompts.yaml`): which reference parser reads each dataset and the instructions
it writes. [`prompts_v2`], [`prompts_video`] and [`video_tables`] take their tables from here."""

from __future__ import annotations

from pathlib import Path

from vlm2vec_hf.package_data import read_yaml

TASK_TABLES_FILE = Path(__file__).with_name("tables") / "mmeb_prompts.yaml"


def read_task_tables(path: Path = TASK_TABLES_FILE) -> dict:
    """The task tables by modality (`image`, `visdoc`, `video`), as the YAML file lays them out."""
    return read_yaml(path)


TASK_TABLES = read_task_tables()
IMAGE_TABLES: dict = TASK_TABLES["image"]
VISDOC_TABLES: dict = TASK_TABLES["visdoc"]
VIDEO_TABLES: dict = TASK_TABLES["video"]

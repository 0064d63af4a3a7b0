"""Group per-dataset scores the way the papers report them (REFERENCE.md §4.1, §4.2): unweighted means per meta-task,
IND / OOD and overall (V1); per meta-task, per modality and over all (V2). Every mean says over how many datasets it
was taken and which expected datasets are missing.

Datasets outside the published benchmark (e.g. the offline mini-MMEB set) join the groups named in their
`tasks.json` entry (`meta_task`, `modality`, `ood`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from vlm2vec_hf.evaluation.published import HEADLINE_METRIC, V1_META_TASKS, V1_OOD, V2_META_TASKS

V1_GROUP_ORDER = ("Classification", "VQA", "Retrieval", "Visual Grounding", "IND", "OOD", "Overall")
MODALITY_GROUP = {"image": "Image", "video": "Video", "visdoc": "VisDoc"}
# Groups that summarise other groups (not meta-tasks).
SUMMARY_GROUPS = frozenset({"IND", "OOD", "Overall", "Image", "Video", "VisDoc", "All"})
# V1 meta-task names -> the V2 image meta-task names.
V1_TO_V2_META = {"Classification": "I-CLS", "VQA": "I-QA", "Retrieval": "I-RET", "Visual Grounding": "I-VG"}


@dataclass
class GroupScore:
    """An unweighted mean over the datasets of one group. `score` is None when none was evaluated."""

    name: str
    score: float | None
    datasets: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.datasets)

    def to_dict(self) -> dict:
        return {**asdict(self), "count": self.count, "expected": self.count + len(self.missing)}


def _group(name: str, members: list[str], scores: Mapping[str, float]) -> GroupScore:
    present = [dataset for dataset in members if dataset in scores]
    missing = [dataset for dataset in members if dataset not in scores]
    score = float(np.mean([scores[dataset] for dataset in present])) if present else None
    return GroupScore(name, score, present, missing)


def _v1_meta_task(dataset: str, meta: Mapping[str, dict]) -> tuple[str | None, bool]:
    for task, members in V1_META_TASKS.items():
        if dataset in members:
            return task, dataset in V1_OOD
    entry = meta.get(dataset, {})
    task = entry.get("meta_task")
    return (task if task in V1_META_TASKS else None), bool(entry.get("ood", False))


def v1_groups(scores: Mapping[str, float], meta: Mapping[str, dict] | None = None) -> list[GroupScore]:
    """Meta-task, IND, OOD and overall means of V1 hit@1 scores (dataset -> score)."""
    meta = meta or {}
    members: dict[str, list[str]] = {name: [] for name in V1_GROUP_ORDER}
    for task, datasets in V1_META_TASKS.items():
        for dataset in datasets:
            members[task].append(dataset)
            members["OOD" if dataset in V1_OOD else "IND"].append(dataset)
            members["Overall"].append(dataset)
    for dataset in scores:
        if dataset in members["Overall"]:
            continue
        task, ood = _v1_meta_task(dataset, meta)
        if task is not None:
            members[task].append(dataset)
            members["OOD" if ood else "IND"].append(dataset)
        members["Overall"].append(dataset)
    return [_group(name, members[name], scores) for name in V1_GROUP_ORDER]


def v2_groups(scores: Mapping[str, float], meta: Mapping[str, dict] | None = None) -> list[GroupScore]:
    """Per meta-task, per modality (Image, Video, VisDoc) and overall (All) means of V2 headline scores."""
    meta = meta or {}
    order: list[str] = []
    members: dict[str, list[str]] = {}
    for modality, tasks in V2_META_TASKS.items():
        for task, datasets in tasks.items():
            members[task] = list(datasets)
            order.append(task)
        members[MODALITY_GROUP[modality]] = [dataset for datasets in tasks.values() for dataset in datasets]
        order.append(MODALITY_GROUP[modality])
    members["All"] = [dataset for modality in MODALITY_GROUP.values() for dataset in members[modality]]
    order.append("All")
    for dataset in scores:
        if dataset in members["All"]:
            continue
        entry = meta.get(dataset, {})
        modality = MODALITY_GROUP.get(entry.get("modality", "image"))
        task = V1_TO_V2_META.get(entry.get("meta_task"), entry.get("meta_task"))
        if task and task not in members:  # a meta-task of its own (e.g. the mini set's visual-document task)
            members[task] = []
            order.insert(order.index("All"), task)
        if task:
            members[task].append(dataset)
        if modality:
            members[modality].append(dataset)
        members["All"].append(dataset)
    return [_group(name, members[name], scores) for name in order]


def headline_metric(layout: str, protocol: str) -> str:
    """The metric a dataset is reported by: V1 hit@1; V2 hit@1 for image / video, ndcg_linear@5 for visdoc."""
    if protocol == "v1":
        return "hit@1"
    return HEADLINE_METRIC[layout if layout in ("visdoc", "video") else "image"]

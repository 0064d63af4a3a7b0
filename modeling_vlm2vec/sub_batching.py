"""Length-bucketed sub-batches of a padded batch: with eager or SDPA attention a `(seq, seq)` mask per row makes
every short row pay for the longest one, so rows of very different lengths run in separate sub-batches, each
trimmed to its own padding, with their images and videos (the family assigns media to rows).

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`.
"""

from __future__ import annotations

from typing import Any

import torch

# Rows shorter than this never get their own sub-batch: their padded mask is small whatever the batch holds.
SPLIT_MIN_LENGTH = 512
# A sub-batch may hold at most this many padded positions per real token.
SPLIT_MAX_PADDING_RATIO = 1.25


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Partition rows (by real length, in tokens) into sub-batches whose padding stays small.

    Rows are taken longest first; a row joins the current group while the group's padded size
    (rows x longest) stays within `SPLIT_MAX_PADDING_RATIO` x its real tokens, and once the longest remaining
    row is under `SPLIT_MIN_LENGTH` all remaining rows form one group. Returns row indices per group.
    """
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    groups: list[list[int]] = []
    for row in order:
        if groups:
            group = groups[-1]
            longest = lengths[group[0]]
            real = sum(lengths[r] for r in group) + lengths[row]
            if longest < SPLIT_MIN_LENGTH or (len(group) + 1) * longest <= SPLIT_MAX_PADDING_RATIO * real:
                group.append(row)
                continue
        groups.append([row])
    return groups


def split_padded_batch(family, vlm_config, inputs: dict[str, Any]) -> list[dict] | None:
    """Cut a padded batch into [`length_groups`] sub-batches, each trimmed to its rows' real tokens, with their
    media (`family.sub_batch_media`); None when one batch is fine (or the media cannot be assigned to rows).

    Args:
        family: the model's `BackboneFamily`.
        vlm_config: the backbone config.
        inputs: `input_ids` / `attention_mask` `(batch, seq)`, optional `position_ids`, and the family's media
            inputs.

    Returns:
        One dict per sub-batch: its `rows` (batch indices), `span` (`(start, end)` columns) and its inputs.
    """
    attention_mask = inputs["attention_mask"]
    lengths = attention_mask.sum(dim=1).tolist()
    if max(lengths) < SPLIT_MIN_LENGTH:
        return None
    groups = length_groups(lengths)
    if len(groups) == 1:
        return None
    if inputs.get("input_ids") is None and any(inputs.get(key) is not None for key in family.media_input_keys):
        return None
    media = family.sub_batch_media(vlm_config, inputs, groups)
    if media is None:
        return None

    real = attention_mask.bool()
    sub_batches = []
    for group, group_media in zip(groups, media):
        rows = torch.tensor(group, device=attention_mask.device)
        columns = real[rows].any(dim=0).nonzero()
        start, end = int(columns[0]), int(columns[-1]) + 1
        sub = {"rows": group, "span": (start, end)}
        for key in ("input_ids", "attention_mask", *family.token_type_input_keys):
            sub[key] = None if inputs.get(key) is None else inputs[key][rows, start:end]
        position_ids = inputs.get("position_ids")
        if position_ids is not None:  # (batch, seq) or (axes, batch, seq)
            position_ids = position_ids[..., rows, :][..., start:end]
        sub["position_ids"] = position_ids
        sub.update(group_media)
        sub_batches.append(sub)
    return sub_batches


__all__ = ["SPLIT_MAX_PADDING_RATIO", "SPLIT_MIN_LENGTH", "length_groups", "split_padded_batch"]

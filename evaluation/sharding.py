"""How the distinct items of an evaluation are split across processes: by estimated cost (LLM tokens of the text,
images and clips, `vlm2vec_hf.distributed.estimate_cost`), not by count, so that no rank waits on another that drew
the clips or the long documents.

The unit of work is an item, except that every item of one clip goes to the same rank, where the processor's
prepared-clip cache decodes the clip once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from vlm2vec_hf.distributed import Ranks, balanced_shares, estimate_cost, gather_objects
from vlm2vec_hf.evaluation.data import Item, item_instruction, item_parts


def item_cost(item: Item) -> float:
    """Estimated LLM tokens of an item: its text (and system-turn instruction), one image, or one clip."""
    text, image, video = item_parts(item)
    words = text + (item_instruction(item) or "")
    return estimate_cost(words, num_images=1 if image and not video else 0, num_clips=1 if video else 0)


def item_shares(items: Sequence[Item], world_size: int) -> list[list[int]]:
    """Each rank's item indices (ascending) for `world_size` ranks: the items of a clip together, the units dealt by
    cost (`balanced_shares`). Every rank computes the same split from the same list."""
    units: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        video = item_parts(item)[2]
        units.setdefault(f"clip:{video}" if video else f"item:{index}", []).append(index)
    groups = list(units.values())
    costs = [sum(item_cost(items[index]) for index in group) for group in groups]
    return [sorted(index for unit in share for index in groups[unit]) for share in balanced_shares(costs, world_size)]


def check_same_items(items: Sequence[Item], ranks: Ranks) -> None:
    """Raise on every rank when the ranks listed different items (different data, subsets or image roots), which
    would make their shares refer to different items."""
    digest = hashlib.sha256(json.dumps(list(items)).encode()).hexdigest()
    digests = gather_objects((len(items), digest), ranks)
    if len(set(digests)) > 1:
        listed = ", ".join(f"rank {rank}: {count} items" for rank, (count, _) in enumerate(digests))
        raise RuntimeError(f"the ranks loaded different evaluation items ({listed}); give every rank the same data")

"""Work across processes launched by `torchrun` or `accelerate launch`: the process group, cost-balanced shares of a
work list, and gathering results on every rank.

Both launchers set `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`; with none of them set, this is
one process and nothing is initialised. The backend is NCCL when the process has a CUDA device and gloo otherwise.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Estimated LLM tokens per visual input when the model does not say (a 448 x 448 image at 28 px per merged patch is
# 256 tokens; a clip is 8 such frames merged in pairs).
DEFAULT_IMAGE_TOKENS = 256
DEFAULT_CLIP_TOKENS = 1024
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launched ones (`rank` 0 of 1 when not launched by torchrun / accelerate)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_ranks() -> Ranks:
    """The rank, world size and local rank the launcher set in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    return Ranks(rank, world_size, local_rank)


def group_ranks() -> Ranks:
    """This process's place in the initialised process group (e.g. the trainer's); `Ranks()` when there is none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    return Ranks(rank, world_size, int(os.environ.get("LOCAL_RANK", str(rank))))


def init_process_group() -> Ranks:
    """Join the launcher's process group (once) and return this process's ranks; a no-op for one process."""
    ranks = launched_ranks()
    if not ranks.distributed:
        return ranks
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend=backend)
    return ranks


def device_for(ranks: Ranks, device: str | None = None) -> str | None:
    """The device a rank encodes on: `device` when given, else its local GPU when there is one, else None (CPU)."""
    if device is not None:
        return device
    import torch

    return f"cuda:{ranks.local_rank}" if torch.cuda.is_available() else None


def estimate_cost(
    text: str | None,
    num_images: int = 0,
    num_clips: int = 0,
    image_tokens: int = DEFAULT_IMAGE_TOKENS,
    clip_tokens: int = DEFAULT_CLIP_TOKENS,
) -> float:
    """Estimated LLM tokens of one input: its text at `CHARS_PER_TOKEN` characters a token, plus `image_tokens` per
    image and `clip_tokens` per clip (at least 1)."""
    return max(1.0, len(text or "") / CHARS_PER_TOKEN + num_images * image_tokens + num_clips * clip_tokens)


def balanced_shares(costs: Sequence[float], world_size: int) -> list[list[int]]:
    """Split work items of the given costs into `world_size` shares of near-equal total cost (longest processing time
    first: the costliest item goes to the least-loaded share; ties by item index, then by share, so every rank
    computes the same split). Returns each share's item indices in ascending order."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    loads = [(0.0, share) for share in range(world_size)]
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, share = heapq.heappop(loads)
        shares[share].append(index)
        heapq.heappush(loads, (load + costs[index], share))
    return [sorted(share) for share in shares]


def gather_objects(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank (`[value]` for one process)."""
    if not ranks.distributed:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def gather_to_main(value: Any, ranks: Ranks) -> list[Any] | None:
    """Every rank's `value`, in rank order, on rank 0 only (None elsewhere; `[value]` for one process): unlike
    `gather_objects`, the other ranks hold no copy of everyone's values."""
    if not ranks.distributed:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * ranks.world_size if ranks.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast_from_main(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value` on every rank (what the others pass is ignored)."""
    if not ranks.distributed:
        return value
    import torch.distributed as dist

    holder = [value if ranks.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def equal_count_order(costs: Sequence[float], world_size: int) -> list[int]:
    """An order of the items whose contiguous equal-count slices (as `numpy.array_split` cuts them: the first
    `len % world_size` slices one item longer) have near-equal total cost, for a splitter that cuts by count, such
    as sentence-transformers' distributed evaluation. Items are dealt from the costliest down, each to the cheapest
    slice that still has room (ties by item index, then by slice)."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    size, remainder = divmod(len(costs), world_size)
    room = [size + (share < remainder) for share in range(world_size)]
    loads = [(0.0, share) for share in range(world_size) if room[share]]
    heapq.heapify(loads)
    slices: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, share = heapq.heappop(loads)
        slices[share].append(index)
        if len(slices[share]) < room[share]:
            heapq.heappush(loads, (load + costs[index], share))
    return [index for share in slices for index in sorted(share)]


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (nothing for one process)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()

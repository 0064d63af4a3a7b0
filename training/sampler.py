"""The reference's interleaved sub-batches (REFERENCE.md §3.5): every batch is made of blocks of `sub_batch_size`
consecutive samples, each block from one subset, blocks drawn in proportion to the subsets' sizes.

VLM2Vec-V2 trains with `--interleave_batch_size 64` inside a global batch of 1024 (8 GPUs x 128): 16 subsets per
batch, the in-batch negatives of a block coming from its own task. sentence-transformers' multi-dataset samplers
draw a whole batch from one dataset (IB = batch size); this sampler plugs into the same trainer hook
(`multi_dataset_batch_sampler`) for any IB that divides the per-device batch size.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from itertools import accumulate

import torch
from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler


class InterleavedSubBatchSampler(MultiDatasetDefaultBatchSampler):
    """Batches of `batch_size` (per device) indices into the `ConcatDataset` of the subsets, made of
    `batch_size // sub_batch_size` blocks; a block is `sub_batch_size` shuffled samples of one subset.

    Every sample is used at most once per epoch; a subset's last incomplete block and the last incomplete batch are
    dropped. The order depends only on `seed` and the epoch, so a resumed run sees the same batches.
    """

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, sub_batch_size: int = 64) -> None:
        super().__init__(dataset, batch_samplers, generator=generator, seed=seed)
        if sub_batch_size <= 0 or self.batch_size % sub_batch_size:
            raise ValueError(
                f"interleave_batch_size {sub_batch_size} must divide the per-device batch size {self.batch_size}"
            )
        self.sub_batch_size = sub_batch_size

    def _blocks(self, generator: torch.Generator) -> list[list[int]]:
        sizes = [len(subset) for subset in self.dataset.datasets]
        offsets = [0, *accumulate(sizes)]
        blocks = []
        for offset, size in zip(offsets, sizes):
            order = (torch.randperm(size, generator=generator) + offset).tolist()
            ib = self.sub_batch_size
            blocks += [order[i : i + ib] for i in range(0, size - ib + 1, ib)]
        # A uniform shuffle of all blocks draws each subset in proportion to its number of blocks.
        return [blocks[i] for i in torch.randperm(len(blocks), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        blocks = self._blocks(generator)
        per_batch = self.batch_size // self.sub_batch_size
        for start in range(0, len(blocks) - per_batch + 1, per_batch):
            yield [index for block in blocks[start : start + per_batch] for index in block]

    def __len__(self) -> int:
        blocks = sum(len(subset) // self.sub_batch_size for subset in self.dataset.datasets)
        return blocks // (self.batch_size // self.sub_batch_size)


def interleaved_sampler(sub_batch_size: int):
    """The `multi_dataset_batch_sampler` argument for sub-batches of `sub_batch_size`."""
    return partial(InterleavedSubBatchSampler, sub_batch_size=sub_batch_size)

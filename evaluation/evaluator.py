"""`MMEBEvaluator`: the MMEB-V1 and MMEB-V2 protocols as a sentence-transformers evaluator, usable on its own, from
`vlm2vec eval`, or inside `SentenceTransformerTrainer(evaluator=...)`.

Speed: every distinct `(prompt, image)` / `(prompt, "", clip)` item of all datasets is encoded once per run (queries
and candidates de-duplicated across datasets; classification labels are shared by all queries; a candidate clip listed
in many pools, or a classification clip queried in many rows, is one item), text-only, image and video items in
separate length-sorted `encode` calls, and, with `cache_dir`, embeddings are stored on disk and reused by later runs
of the same model. Video items are encoded in calls of at most `clips_per_call` clips, all items of a clip in the same
call, so the processor's prepared-clip cache (`clip_cache_bytes`) decodes each clip once although `encode` reorders
a call's inputs by length.
"""

from __future__ import annotations

import logging
import os
import time
import traceback

import numpy as np
from sentence_transformers.base.evaluation import BaseEvaluator
from tqdm.auto import tqdm

from vlm2vec_hf.distributed import Ranks, broadcast_from_main, equal_count_order, gather_to_main, group_ranks
from vlm2vec_hf.evaluation.aggregate import headline_metric, v1_groups, v2_groups
from vlm2vec_hf.evaluation.data import EvalDataset, Item, item_instruction, item_parts
from vlm2vec_hf.evaluation.embedding_cache import EmbeddingCache, model_fingerprint
from vlm2vec_hf.evaluation.metrics import hit_at_1, mean_metrics, rank, ranking_metrics
from vlm2vec_hf.evaluation.sharding import check_same_items, item_cost, item_shares

logger = logging.getLogger(__name__)
PROTOCOLS = ("v1", "v2")
# Clips per video `encode` call: the processor's default 1 GiB clip cache holds 32 clips of 8 frames at the published
# V2 models' largest frame (1,003,520 px, 24 MB a clip), so every item of a call finds its clip prepared.
CLIPS_PER_CALL = 32
# Embeddings per rank in one gather round to rank 0: 8192 x 4096 float32 is 128 MiB, which rank 0 receives from each
# rank at once (on the GPU, with NCCL), rather than all of an MMEB-V2 run's vectors in one message.
ROWS_PER_GATHER = 8192


def encoder_input(item: Item):
    """An `encode()` input for an item: its text, `{"text", "image"}` or `{"text", "video"}` (the text holds MMEB's
    image / video tag, which the model's processor maps to its own token; `video` is a frame folder or a video file,
    sampled by the model). A system-style item becomes chat messages: its instruction as the system turn (none: the
    model's default), its media and text as the user turn."""
    text, image, video = item_parts(item)
    instruction = item_instruction(item)
    if instruction is not None:
        content = [{"type": "video", "video": video}] if video else [{"type": "image", "image": image}] if image else []
        content += [{"type": "text", "text": text}] if text else []
        return ([{"role": "system", "content": instruction}] if instruction else []) + [
            {"role": "user", "content": content}
        ]
    if video:
        return {"text": text, "video": video} if text else {"video": video}
    if not image:
        return text
    return {"text": text, "image": image} if text else {"image": image}


def item_kind(item: Item) -> str:
    """`"text"`, `"image"` or `"video"`: items of one kind are encoded in the same length-sorted `encode` call."""
    _text, image, video = item_parts(item)
    return "video" if video else "image" if image else "text"


def clip_chunks(items: list[Item], clips_per_call: int) -> list[list[Item]]:
    """Video items in chunks of at most `clips_per_call` distinct clips (first-seen order), every item of a clip in
    its clip's chunk, in first-seen order within it."""
    by_clip: dict[str, list[Item]] = {}
    for item in items:
        by_clip.setdefault(item_parts(item)[2], []).append(item)
    groups = list(by_clip.values())
    return [
        [item for group in groups[start : start + clips_per_call] for item in group]
        for start in range(0, len(groups), clips_per_call)
    ]


def unique_items(datasets: list[EvalDataset]) -> list[Item]:
    """Every distinct item of `datasets`, in first-seen order."""
    items: dict[Item, None] = {}
    for dataset in datasets:
        items.update(dict.fromkeys(dataset.queries))
        for row in dataset.candidates:
            items.update(dict.fromkeys(row))
        items.update(dict.fromkeys(dataset.corpus or []))
    return list(items)


def embedding_settings(model) -> dict:
    """What besides the weights changes an embedding: module types, prompt format, max_length, image bounds."""
    processor = getattr(model[0], "processor", None)
    settings = {"modules": [type(module).__name__ for module in model]}
    if processor is not None:
        settings.update(
            prompt_format=getattr(processor, "prompt_format", None),
            max_length=getattr(processor, "max_length", None),
            image_size=dict(getattr(processor.image_processor, "size", {}) or {}),
        )
        if getattr(processor, "num_frames", None) is not None:  # frames sampled per clip (video models)
            settings["num_frames"] = processor.num_frames
    return settings


class MMEBEvaluator(BaseEvaluator):
    """Scores a model on MMEB datasets.

    Protocol `"v1"` (REFERENCE.md §4.1): hit@1 per dataset (cosine, argmax, ties to the gold), means per meta-task,
    IND / OOD and overall. Protocol `"v2"` (§4.2): hit, nDCG, precision, recall, F1, MAP, MRR at 1 / 5 / 10, local
    or global ranking per dataset, headline hit@1 (image) or ndcg_linear@5 (visual documents), means per meta-task,
    modality and overall.

    Args:
        datasets: from [`load_mmeb_eval`].
        protocol: `"v1"` or `"v2"`.
        batch_size: encoding batch size.
        name: prefix of the returned metric names.
        cache_dir: folder of the on-disk embedding cache; None disables it (as during training, where the weights
            change between evaluations).
        show_progress_bar: encoding progress bars (default: on when logging at INFO).
        clips_per_call: video items are encoded in `encode` calls of at most this many distinct clips, all items of a
            clip together, so that the model's prepared-clip cache decodes each clip once; keep it under what the
            cache (`clip_cache_bytes`, default 1 GiB) holds. Embeddings do not depend on it.
        distributed: None (default): when a `torch.distributed` process group is initialised, every rank must call
            the evaluator; the items are split across the ranks by estimated cost, rank 0 scores, and every rank
            returns rank 0's metrics. Inside `SentenceTransformerTrainer` under DDP, where sentence-transformers runs
            the evaluator on rank 0 and shares out its `encode` calls, each call is ordered so the equal-count
            slices carry equal cost. False: this process encodes everything (call it on one rank only).

    After a call, `self.results` holds everything (per-dataset metrics, groups, encoding counts, and `distributed`:
    the world size and each rank's items, estimated tokens and encoding seconds) for the reports.
    """

    def __init__(
        self,
        datasets: list[EvalDataset],
        protocol: str = "v1",
        batch_size: int = 32,
        name: str = "mmeb",
        cache_dir: str | os.PathLike | None = None,
        show_progress_bar: bool | None = None,
        clips_per_call: int = CLIPS_PER_CALL,
        distributed: bool | None = None,
    ):
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if not isinstance(clips_per_call, int) or clips_per_call < 1:
            raise ValueError(f"clips_per_call must be a positive integer, got {clips_per_call!r}")
        if not datasets:
            raise ValueError("no evaluation datasets")
        self.datasets = datasets
        self.protocol = protocol
        self.batch_size = batch_size
        self.name = name
        self.cache_dir = cache_dir
        self.show_progress_bar = show_progress_bar
        self.clips_per_call = clips_per_call
        self.distributed = distributed
        self._served: list[dict] | None = None
        self.primary_metric = "hit@1" if protocol == "v1" else "overall"
        self.greater_is_better = True
        self.results: dict = {}

    def process_ranks(self, model) -> Ranks:
        """The processes that share this evaluation: the initialised process group's (every rank runs the evaluator,
        as under `torchrun vlm2vec eval`), or one process: with no group, with `distributed=False`, or inside
        sentence-transformers' distributed evaluation (the trainer under DDP, where rank 0 alone runs the evaluator
        and the other ranks serve its `encode` calls; see `encode_items`)."""
        if self.distributed is False or getattr(model, "_distributed_inference", None) is not None:
            return Ranks()
        return group_ranks()

    def encode_items(self, model, items: list[Item], store=None, show_progress_bar: bool | None = None) -> np.ndarray:
        """Embeddings of `items` (shape `(len(items), dim)`, float32, L2-normalised), text-only, image and video
        items in separate `encode` calls; `store(group, vectors)` is called after each call (the cache).

        Inside sentence-transformers' distributed evaluation, each call's inputs are ordered so that its
        equal-count slices, one per rank, carry near-equal estimated cost (`equal_count_order`)."""
        serving = getattr(model, "_distributed_inference", None)
        serving_ranks = group_ranks().world_size if serving is not None else 1
        computed: dict[Item, np.ndarray] = {}

        def encode(group: list[Item], show: bool | None) -> None:
            order = list(range(len(group)))
            if serving_ranks > 1:
                costs = [item_cost(item) for item in group]
                order = equal_count_order(costs, serving_ranks)
                for share, part in enumerate(np.array_split(np.asarray(order, dtype=int), serving_ranks)):
                    self._served[share]["items"] += len(part)
                    self._served[share]["estimated_tokens"] += round(sum(costs[i] for i in part))
            ordered = [group[i] for i in order]
            vectors = model.encode(
                [encoder_input(item) for item in ordered],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=show,
            ).astype(np.float32)
            computed.update(zip(ordered, vectors))
            if store is not None:
                store(ordered, vectors)

        if serving_ranks > 1:
            self._served = [
                {"rank": rank, "items": 0, "estimated_tokens": 0, "seconds": None} for rank in range(serving_ranks)
            ]
        # Text-only, image and video items in separate calls: encode() sorts each by length, and no text batch pads
        # up to an image's or a clip's hundreds of visual tokens. Video items: a few clips per call (clip_chunks).
        by_kind: dict[str, list[Item]] = {"text": [], "image": [], "video": []}
        for item in items:
            by_kind[item_kind(item)].append(item)
        for kind in ("text", "image"):
            if by_kind[kind]:
                encode(by_kind[kind], show_progress_bar)
        chunks = clip_chunks(by_kind["video"], self.clips_per_call)
        if len(chunks) == 1:
            encode(chunks[0], show_progress_bar)
        elif chunks:  # one bar over all video calls (on as encode() would turn its own on), none per call
            show = show_progress_bar
            if show is None:
                show = logging.getLogger("sentence_transformers").isEnabledFor(logging.INFO)
            with tqdm(total=len(by_kind["video"]), desc="Video items", disable=not show) as bar:
                for chunk in chunks:
                    encode(chunk, False)
                    bar.update(len(chunk))
        if not computed:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([computed[item] for item in items])

    def embed(self, model, items: list[Item]) -> tuple[np.ndarray, dict[str, int]]:
        """Embeddings of `items` (shape `(len(items), dim)`, float32, L2-normalised) and how many were encoded, in
        this process alone."""
        embeddings, counts, _shares = self.embed_shared(model, items, Ranks())
        return embeddings, counts

    def embed_shared(
        self, model, items: list[Item], ranks: Ranks
    ) -> tuple[np.ndarray | None, dict[str, int], list[dict]]:
        """[`embed`] with the work split across `ranks`: rank 0 looks the items up in the cache, the items it lacks
        are split by estimated cost (`item_shares`), each rank encodes its share, and rank 0 gathers the vectors,
        stores them in the cache and returns all embeddings; other ranks return None. Also returns each rank's
        share: `{"rank", "items", "estimated_tokens", "seconds"}` (its encoding time)."""
        cache, cached, lookup_error = None, {}, None
        try:
            if self.cache_dir is not None and ranks.is_main:  # one reader and writer per evaluation (see the docs)
                cache = EmbeddingCache(self.cache_dir, model_fingerprint(model, embedding_settings(model)))
                cached = cache.get(items)
        except Exception:
            if not ranks.distributed:
                raise
            lookup_error = traceback.format_exc()
        todo = [index for index, item in enumerate(items) if item not in cached]
        if ranks.distributed:  # every rank reaches each collective, whatever failed where
            check_same_items(items, ranks)
            todo, lookup_error = broadcast_from_main((todo, lookup_error), ranks)
            if lookup_error is not None:
                raise RuntimeError(f"rank 0 could not read the embedding cache:\n{lookup_error}")
        shares = item_shares([items[index] for index in todo], ranks.world_size)
        mine = [todo[position] for position in shares[ranks.rank]]
        show = self.show_progress_bar if ranks.is_main else False
        store = cache.put if cache is not None and not ranks.distributed else None
        start = time.perf_counter()
        error = None
        try:
            vectors = self.encode_items(model, [items[index] for index in mine], store, show)
        except Exception:
            if not ranks.distributed:
                raise
            vectors, error = None, traceback.format_exc()  # rank 0 raises it for everyone, after the gather
        share = {
            "rank": ranks.rank,
            "items": len(mine),
            "estimated_tokens": round(sum(item_cost(items[index]) for index in mine)),
            "seconds": time.perf_counter() - start,
        }
        parts = gather_to_main((share, error), ranks)
        computed: dict[int, np.ndarray] = {}
        for first in range(0, max(map(len, shares)), ROWS_PER_GATHER):  # the same rounds on every rank
            rows = slice(first, first + ROWS_PER_GATHER)
            received = gather_to_main((mine[rows], None if vectors is None else vectors[rows]), ranks)
            for indices, rank_vectors in received or []:
                computed.update(zip(indices, rank_vectors if rank_vectors is not None else []))
        if not ranks.is_main:
            return None, {"encoded": len(todo), "from_cache": 0}, []
        failed = [f"rank {part[0]['rank']}:\n{part[1]}" for part in parts if part[1] is not None]
        if failed:
            raise RuntimeError("encoding failed on " + "\n".join(failed))
        if cache is not None:
            if ranks.distributed and computed:
                cache.put([items[index] for index in computed], np.stack(list(computed.values())))
            cache.close()
        stacked = np.stack([cached[item] if item in cached else computed[index] for index, item in enumerate(items)])
        return stacked, {"encoded": len(todo), "from_cache": len(cached)}, [part[0] for part in parts]

    def score_dataset(self, dataset: EvalDataset, embeddings: np.ndarray, index: dict[Item, int]) -> dict:
        """Metrics of one dataset (each in [0, 1]) from the embeddings of all items."""
        queries = embeddings[[index[item] for item in dataset.queries]]
        if dataset.corpus is not None:
            all_scores = queries @ embeddings[[index[item] for item in dataset.corpus]].T
            per_query_scores = list(all_scores)
        else:
            per_query_scores = [
                embeddings[[index[item] for item in row]] @ query for query, row in zip(queries, dataset.candidates)
            ]
        if self.protocol == "v1" and dataset.layout != "visdoc":
            metrics = {"hit@1": float(np.mean([hit_at_1(s, r) for s, r in zip(per_query_scores, dataset.relevance)]))}
        else:
            metrics = mean_metrics([ranking_metrics(rank(s), r) for s, r in zip(per_query_scores, dataset.relevance)])
        candidates = (
            len(dataset.corpus) if dataset.corpus is not None else np.mean([len(r) for r in dataset.candidates])
        )
        headline = headline_metric(dataset.layout, self.protocol)
        return {
            "metrics": metrics,
            "headline_metric": headline,
            "score": metrics[headline],
            "queries": len(dataset.queries),
            "candidates_per_query": float(candidates),
            "eval_type": dataset.eval_type,
            "layout": dataset.layout,
            "task_type": dataset.task_type,
        }

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        ranks = self.process_ranks(model)
        self._served = None
        try:
            outcome = self.evaluate(model, ranks)
        except Exception as error:
            if not ranks.distributed:
                raise
            outcome = error
        if ranks.distributed:  # every rank returns rank 0's results, or raises its error
            message = broadcast_from_main(outcome if not isinstance(outcome, Exception) else repr(outcome), ranks)
            if isinstance(outcome, Exception) and ranks.is_main:
                raise outcome
            if isinstance(message, str):
                raise RuntimeError(f"the evaluation failed on rank 0: {message}")
            outcome = message
        self.results, metrics = outcome
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def evaluate(self, model, ranks: Ranks) -> tuple[dict, dict[str, float]] | None:
        """Encode (shared across `ranks`) and score: `(results, metrics)` on rank 0, None on the other ranks."""
        start = time.perf_counter()
        items = unique_items(self.datasets)
        embeddings, counts, shares = self.embed_shared(model, items, ranks)
        if not ranks.is_main:
            return None
        index = {item: position for position, item in enumerate(items)}
        per_dataset = {dataset.name: self.score_dataset(dataset, embeddings, index) for dataset in self.datasets}
        scores = {name: result["score"] for name, result in per_dataset.items()}
        meta = {dataset.name: dataset.meta for dataset in self.datasets}
        groups = v1_groups(scores, meta) if self.protocol == "v1" else v2_groups(scores, meta)
        naive = sum(len(dataset.items()) for dataset in self.datasets)
        shares = self._served or shares  # inside sentence-transformers' distributed evaluation: its ranks' shares
        results = {
            "protocol": self.protocol,
            "datasets": per_dataset,
            "groups": {group.name: group.to_dict() for group in groups},
            "overall": float(np.mean(list(scores.values()))),
            "encoding": {
                "naive_items": naive,
                "unique_items": len(items),
                **counts,
                "forward_passes_saved": naive - counts["encoded"],
            },
            "distributed": {"world_size": len(shares), "ranks": shares},
            "seconds": time.perf_counter() - start,
        }
        logger.info(
            "MMEB %s: %d datasets, %d items listed, %d distinct, %d encoded (%d from cache) by %d process(es)",
            self.protocol,
            len(self.datasets),
            naive,
            len(items),
            counts["encoded"],
            counts["from_cache"],
            len(shares),
        )
        metrics = {f"{name}_{result['headline_metric']}": result["score"] for name, result in per_dataset.items()}
        metrics.update({f"group_{group.name}": group.score for group in groups if group.score is not None})
        metrics["overall"] = results["overall"]
        if self.protocol == "v1":
            metrics["hit@1"] = results["overall"]
        return results, self.prefix_name_to_metrics(metrics, self.name)

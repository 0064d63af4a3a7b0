"""Model cards for VLM2Vec model folders: what the model is, working usage snippets (sentence-transformers and
plain transformers; text, image, image+text with the model's own instructions), MMEB results from a `vlm2vec eval`
JSON with the published scores beside ours, training details, limitations, citation, and Hub metadata
(`library_name`, `pipeline_tag`, `tags`, `base_model`, `license`, `datasets`, `model-index`).

The metadata is built with huggingface_hub's `ModelCardData` / `EvalResult`, so the YAML header is what the Hub
parses. No `widget` is written: sentence-transformers' own card can leak PIL images into widget examples
(OFFLINE.md §7.9), and an image embedding model has no useful text-only widget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from vlm2vec_hf.evaluation.published import V1_META_TASKS, meta_task_of
from vlm2vec_hf.modeling_vlm2vec.backbone_common import BackboneFamily
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

MMEB_EVAL_DATASET = "TIGER-Lab/MMEB-eval"
MMEB_TRAIN_DATASET = "TIGER-Lab/MMEB-train"
TRAIN_DETAIL_KEYS = (
    "data",
    "subsets",
    "split",
    "num_sample_per_subset",
    "hard_negatives",
    "per_device_train_batch_size",
    "gc_mini_batch_size",
    "temperature",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_steps",
    "lora",
    "use_dora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "matryoshka_dims",
    "batch_per_subset",
    "interleave_batch_size",
    "bf16",
    "gradient_checkpointing",
    "seed",
)
CITATION = """```bibtex
@article{jiang2024vlm2vec,
  title   = {VLM2Vec: Training Vision-Language Models for Massive Multimodal Embedding Tasks},
  author  = {Jiang, Ziyan and Meng, Rui and Yang, Xinyi and Yavuz, Semih and Zhou, Yingbo and Chen, Wenhu},
  journal = {arXiv preprint arXiv:2410.05160},
  year    = {2024}
}
@article{meng2025vlm2vecv2,
  title   = {VLM2Vec-V2: Advancing Multimodal Embedding for Videos, Images, and Visual Documents},
  author  = {Meng, Rui and Jiang, Ziyan and Liu, Ye and Su, Mingyi and Yang, Xinyi and Fu, Yuepeng and Qin, Can and
             Chen, Zeyuan and Xu, Ran and Xiong, Caiming and Zhou, Yingbo and Chen, Wenhu and Yavuz, Semih},
  journal = {arXiv preprint arXiv:2507.04590},
  year    = {2025}
}
```"""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def describe_folder(folder: Path) -> dict:
    """What the card needs from a model folder's config files (backbone, pooling, prompts, processor options, ...)."""
    config = _read_json(folder / "config.json")
    adapter = _read_json(folder / "adapter_config.json")
    processor = _read_json(folder / "processor_config.json")
    st_config = _read_json(folder / "config_sentence_transformers.json")
    if adapter and not config:
        config = _read_json(Path(adapter.get("base_model_name_or_path", "")) / "config.json")
    vlm = config.get("vlm_config", {})
    text = vlm.get("text_config", {})
    # An adapter folder whose base config is not at hand still names its backbone in processor_config.json.
    model_type = vlm.get("model_type") or processor.get("backbone_model_type")
    family = get_family(model_type, name=config.get("backbone_family") or processor.get("backbone_family"))
    return {
        "backbone": family.display_name_for(model_type),
        "modalities": family.modalities,
        "hidden_size": text.get("hidden_size") or vlm.get("hidden_size"),
        "layers": text.get("num_hidden_layers") or vlm.get("num_hidden_layers"),
        "pooling": config.get("pooling", "last"),
        "normalize": config.get("normalize", True),
        "position_ids_mode": config.get("position_ids_mode", "reference"),
        "prompt_format": processor.get("prompt_format", "v1"),
        "max_length": processor.get("max_length"),
        "num_frames": processor.get("num_frames") if family.takes_video else None,
        "processor_options": _processor_option_values(family, folder) if processor else {},
        "prompts": st_config.get("prompts", {}),
        "adapter": bool(adapter),
    }


def _processor_option_values(family: BackboneFamily, folder: Path) -> dict:
    """The family's processor options (pixel bounds, crop counts, ...) as the folder's saved image processor has
    them; an option without a saved value is left out."""
    values = family.processor_option_values(family.load_image_processor(folder))
    return {name: value for name, value in values.items() if value is not None}


def _inputs(info: dict) -> str:
    """What one input may hold, from the family's declared modalities, e.g. "text, images and videos"."""
    names = [{"image": "images", "video": "videos"}.get(modality, modality) for modality in info["modalities"]]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _modality_limitation(info: dict) -> str:
    """The card's line on video, from the family's declared modalities."""
    if "video" not in info["modalities"]:
        return f"Video inputs are not supported: the {info['backbone']} backbone takes {_inputs(info)} only."
    frames = f"{info['num_frames']} " if info["num_frames"] else ""
    return (
        f"A video is embedded from {frames}evenly spaced frames (`num_frames`), so fast or long events may be missed."
    )


def _eval_results(results: dict, model_name: str) -> list[EvalResult]:
    """One `model-index` entry per dataset (headline metric ×100); datasets outside MMEB get type `local`."""
    entries = []
    benchmark = MMEB_EVAL_DATASET if results.get("protocol") == "v1" else "TIGER-Lab/MMEB-V2"
    for name, result in results["datasets"].items():
        dataset_type = benchmark if meta_task_of(name) is not None else "local"
        entries.append(
            EvalResult(
                task_type="sentence-similarity",
                task_name="Multimodal embedding",
                dataset_type=dataset_type,
                dataset_name=name,
                dataset_config=name,
                dataset_split="test",
                metric_type=result["headline_metric"].replace("@", "_at_"),
                metric_name=result["headline_metric"],
                metric_value=round(100 * result["score"], 2),
            )
        )
    return entries


def _usage(repo_id: str, info: dict) -> str:
    prompts = info["prompts"]
    question = "OK-VQA" if "OK-VQA" in prompts else None
    qa_instruction = prompts.get("OK-VQA", "Represent the given image with the following question:")
    image_prompt = 'prompt_name="image_target"' if "image_target" in prompts else 'prompt="Represent the given image."'
    question_arg = f'prompt_name="{question}"' if question else f'prompt="{qa_instruction}"'
    return f"""### sentence-transformers

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{repo_id}", trust_remote_code=True)
texts = model.encode(["a cat sitting on a sofa", "a cup of coffee"])  # text
images = model.encode(["cat.png"], {image_prompt})  # image
queries = model.encode([{{"image": "cat.png", "text": "What animal is this?"}}], {question_arg})  # image + text
print(model.similarity(queries, texts), model.similarity(images, texts))
```

Instructions go in with `prompt=` or by name with `prompt_name=`; the model ships {len(prompts)} named prompts
(the MMEB task instructions that mteb has a task for, under mteb's task names, so mteb applies them:
{", ".join(sorted(prompts)[:6])}, ...). A plain string without a prompt is embedded as is, as the reference embeds its
text targets.

### transformers

```python
import torch
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
prompts = [
    processor.format_prompt("What animal is this?", "{qa_instruction}", num_images=1),
    processor.format_prompt(None, "Represent the given image.", num_images=1),
    "a cat sitting on a sofa",
]
inputs = processor(text=prompts, images=["cat.png", "cat.png"])
with torch.no_grad():
    embeddings = model(**inputs).embeddings  # (3, {info["hidden_size"]}), L2-normalised
print(embeddings @ embeddings.T)
```
"""


def _details(info: dict, base_model: str | None) -> str:
    rows = [
        ("Backbone", f"{info['backbone']}" + (f" (`{base_model}`)" if base_model else "")),
        ("Inputs", _inputs(info)),
        ("Embedding", f"{info['hidden_size']} dimensions, last non-padding token, L2-normalised: {info['normalize']}"),
        (
            "Position ids",
            f"`{info['position_ids_mode']}`"
            + (
                " (plain 1-D positions, as the published VLM2Vec models were trained)"
                if info["position_ids_mode"] == "reference"
                else " (the backbone's own position ids)"
            ),
        ),
        ("Prompt format", f"`{info['prompt_format']}`"),
        *((f"Image processor `{name}`", str(value)) for name, value in info["processor_options"].items()),
        ("Max length", str(info["max_length"]) if info["max_length"] else "no truncation"),
        ("Similarity", "cosine"),
    ]
    return "\n".join(["| | |", "| --- | --- |", *[f"| {key} | {value} |" for key, value in rows]])


def _results_section(results: dict, model_name: str) -> str:
    from vlm2vec_hf.evaluation.report import to_markdown

    published = results.get("published")
    scores = published["scores"] if published else None
    name = published["model"] if published else ""
    text = to_markdown(results, model_name, scores, name)
    source = (
        f"Published scores: the reference's `all_scores/{published['release']}` JSONs for `{name}`."
        if published
        else ""
    )
    return f"{text}\n{source}".rstrip() + "\n"


def _training_section(train_config: dict) -> str:
    lora_keys = {"use_dora", "lora_r", "lora_alpha", "lora_dropout"}
    rows = [
        (key, train_config[key])
        for key in TRAIN_DETAIL_KEYS
        if train_config.get(key) not in (None, [], "") and (train_config.get("lora") or key not in lora_keys)
    ]
    objective = (
        f"InfoNCE over in-batch negatives (query → target), temperature {train_config.get('temperature', 0.02)}, "
        f"through sentence-transformers' `CachedMultipleNegativesRankingLoss` (GradCache)."
    )
    table = "\n".join(["| option | value |", "| --- | --- |", *[f"| `{k}` | {v} |" for k, v in rows]])
    return (
        f"Trained with `vlm2vec train` (sentence-transformers' `SentenceTransformerTrainer`). {objective}\n\n{table}\n"
    )


def build_model_card(
    folder: str | os.PathLike,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    base_model: str | None = None,
    eval_results: dict | None = None,
    train_config: dict | None = None,
    license: str = "apache-2.0",
    random_weights: bool = False,
    notes: str | None = None,
) -> ModelCard:
    """A `ModelCard` for the model folder at `folder`.

    Args:
        repo_id: the name in the usage snippets (default: the folder path).
        eval_results: a `vlm2vec eval` results JSON (with `published` when it was run with `--compare`).
        train_config: the `TrainConfig` of the run that produced the model, as a dict.
        random_weights: say plainly that the weights are random (demo / test models).
        notes: extra limitations, one paragraph.
    """
    folder = Path(folder)
    info = describe_folder(folder)
    repo_id = repo_id or str(folder)
    model_name = model_name or repo_id.split("/")[-1]
    datasets = []
    if train_config and str(train_config.get("data", "")).startswith(MMEB_TRAIN_DATASET):
        datasets.append(MMEB_TRAIN_DATASET)
    if eval_results and eval_results.get("protocol") == "v1" and set(eval_results["datasets"]) & _mmeb_datasets():
        datasets.append(MMEB_EVAL_DATASET)
    data = ModelCardData(
        model_name=model_name,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        license=license,
        base_model=base_model,
        datasets=datasets or None,
        tags=[
            "sentence-transformers",
            "feature-extraction",
            "multimodal-embedding",
            "vlm2vec",
            "mmeb",
            info["backbone"].lower().replace(".", "_").replace("-", "_"),
            "custom_code",
        ],
        eval_results=_eval_results(eval_results, model_name) if eval_results else None,
    )
    sections = [
        f"# {model_name}",
        f"A VLM2Vec-style universal multimodal embedding model: a {info['backbone']} vision-language model whose final "
        "hidden state at the last non-padding token, L2-normalised, embeds any mix of text and images (the VLM2Vec "
        "recipe, arXiv 2410.05160 / 2507.04590). Packaged with vlm2vec-hf: the model code ships in this repository, so "
        "load it with `trust_remote_code=True`; nothing else needs to be installed.",
    ]
    if random_weights:
        sections.append("**The weights are random** (a demo / test model): the embeddings carry no meaning.")
    sections += ["## Model details", _details(info, base_model), "## Usage", _usage(repo_id, info)]
    if eval_results:
        sections += ["## MMEB results", _results_section(eval_results, model_name)]
    if train_config:
        sections += ["## Training", _training_section(train_config)]
    limitations = [
        _modality_limitation(info),
        "Images are resized by the backbone's image processor (its settings above), so large images lose detail.",
        "Embeddings depend on the exact prompt string (instruction, spacing, trailing newline): use the shipped "
        "prompts for MMEB-style tasks.",
    ]
    if notes:
        limitations.insert(0, notes)
    sections += ["## Limitations", "\n".join(f"- {line}" for line in limitations), "## Citation", CITATION]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


def card_with_eval_results(folder: str | os.PathLike, results: dict, model_name: str) -> ModelCard:
    """The folder's `README.md` card (a new one from [`build_model_card`] when it has none) with `results` (a
    `vlm2vec eval` results JSON) in its `model-index`, so the Hub shows them: an entry for the same task, dataset
    and metric is replaced, the others kept, as huggingface_hub's `metadata_update` merges them. The folder is only
    read.

    `evaluate.push_to_hub` is not used: it makes one commit per metric, takes no endpoint or token, and its dataset
    check catches `requests` errors where huggingface_hub 2.x raises httpx ones, so a `local` dataset fails it.
    """
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return build_model_card(folder, model_name=model_name, eval_results=results)
    card = ModelCard.load(readme)
    new = _eval_results(results, model_name)
    kept = [old for old in card.data.eval_results or [] if not any(old.is_equal_except_value(e) for e in new)]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name
    return card


def _mmeb_datasets() -> set[str]:
    return {dataset for datasets in V1_META_TASKS.values() for dataset in datasets}


def write_model_card(folder: str | os.PathLike, **kwargs) -> Path:
    """Write `README.md` into the model folder (replacing sentence-transformers' generated card); returns its path.
    Keyword arguments as [`build_model_card`]."""
    card = build_model_card(folder, **kwargs)
    path = Path(folder) / "README.md"
    card.save(path)
    return path

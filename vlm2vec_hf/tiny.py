"""Small random backbones of any registered family, for tests, demos and benchmarks (no download needed).

Each family declares what it can build (`init_model_types`, `init_sizes`, `random_config`) and which bundled
tokenizer its random models use (`tiny_tokenizer`, a folder under `vlm2vec_hf/assets/`). Their weights are random:
embeddings from them carry no meaning, only shapes, batching, padding, save/load and speed can be checked with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlm2vec_hf.modeling_vlm2vec.backbone_common import BackboneFamily
from vlm2vec_hf.modeling_vlm2vec.backbones import DEFAULT_MODEL_TYPE, NAMED_FAMILIES, all_families, get_family

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig, PreTrainedTokenizerBase

ASSETS = Path(__file__).parent / "assets"
BUNDLED_IMAGES = ASSETS / "images"


def init_choices() -> list[str]:
    """What `vlm2vec init --family` takes: every family's `init_model_types`, then the names of families that can
    build one (a recipe family by name)."""
    model_types = [model_type for family in all_families() for model_type in family.init_model_types]
    names = [family.name for family in all_families() if family.init_model_types]
    return list(dict.fromkeys([*model_types, *names]))


def init_size_choices() -> list[str]:
    """What `vlm2vec init --size` takes: every size a family that can build a random backbone declares."""
    sizes = (size for family in all_families() if family.init_model_types for size in family.init_sizes)
    return list(dict.fromkeys(sizes))


def resolve_init_family(family: str) -> tuple[BackboneFamily, str]:
    """`(family, model_type)` of an `init` choice: a registered family name (its first `init_model_types`) or a
    model type (its default family).

    Raises:
        ValueError: naming the choices, for a name that is neither or a family that cannot build a random backbone.
    """
    if family in NAMED_FAMILIES and NAMED_FAMILIES[family].init_model_types:
        found = NAMED_FAMILIES[family]
        return found, found.init_model_types[0]
    try:
        found = get_family(family)
    except ValueError:
        found = None
    if found is None or family not in found.init_model_types:
        raise ValueError(f"no random backbone for {family!r}; choose one of {init_choices()}")
    return found, family


def tiny_tokenizer(family: str = DEFAULT_MODEL_TYPE) -> PreTrainedTokenizerBase:
    """The bundled small tokenizer a random model of `family` (a family name or model type) uses."""
    found, _ = resolve_init_family(family)
    if found.tiny_tokenizer is None:
        raise ValueError(f"backbone family {found.name!r} declares no bundled tokenizer (tiny_tokenizer)")
    return found.load_tokenizer(ASSETS / found.tiny_tokenizer)


def backbone_config(size: str = "tiny", family: str = DEFAULT_MODEL_TYPE) -> PreTrainedConfig:
    """A random backbone config of `size` for `family` (a family name or model type), wired to its bundled
    tokenizer's special-token ids."""
    found, model_type = resolve_init_family(family)
    return found.random_config(size, tiny_tokenizer(family), model_type)


def random_backbone(
    size: str = "tiny", family: str = DEFAULT_MODEL_TYPE, seed: int = 0, weight_std: float | None = 0.2
) -> torch.nn.Module:
    """A random base VLM of `family` (no LM head), eager attention.

    With the default init (std 0.02) every input gets nearly the same embedding; `weight_std` re-draws every
    parameter with two or more dimensions from N(0, weight_std^2) with a seeded generator so embeddings differ.
    `None` keeps transformers' init.
    """
    import torch

    torch.manual_seed(seed)
    found, _ = resolve_init_family(family)
    config = backbone_config(size, family)
    config._attn_implementation = "eager"
    model = found.build_backbone(config)
    if weight_std is not None:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.ndim >= 2:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * weight_std)
    return model.eval()


def write_random_model(
    out: str | Path,
    size: str = "tiny",
    family: str = DEFAULT_MODEL_TYPE,
    seed: int = 0,
    overwrite: bool = False,
    **processor_options: Any,
) -> Path:
    """Write a random-init VLM2Vec model folder of `family` (a family name or model type; transformers' own init, to
    train from scratch); returns it. `processor_options` are the family's (e.g. pixel bounds), defaults the
    published model's."""
    from vlm2vec_hf.model_folder import make_processor, write_model_folder
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    found, model_type = resolve_init_family(family)
    found.check_image_processor_options(processor_options)
    backbone_family = found.name if found is not get_family(model_type) else None
    model = VLM2VecModel.from_backbone(
        random_backbone(size, family, seed=seed, weight_std=None), backbone_family=backbone_family
    )
    processor = make_processor(
        tiny_tokenizer(family),
        prompt_format=found.prompt_formats[0],
        max_length=found.default_max_length,
        backbone_model_type=model_type,
        backbone_family=backbone_family,
        **processor_options,
    )
    return write_model_folder(model, processor, out, overwrite=overwrite)

"""The one registry of VLM2Vec backbone families: a family name, or else `vlm_config.model_type`, -> its
`BackboneFamily`.

A folder whose family is not its backbone's default (a recipe on a shared backbone, e.g. GME on Qwen2-VL) records
the family's name as `backbone_family` in `config.json` and `processor_config.json`; folders without it use the
family of their `model_type`. `VLM2VecConfig`, `VLM2VecModel` and `VLM2VecProcessor` ask the family returned here
for everything that differs between backbones and never branch on `model_type` or family names themselves. This
file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch`,
`transformers`, `numpy` and `PIL`.
"""

from __future__ import annotations

from .backbone_common import BackboneFamily
from .backbone_gme import FAMILY as GME
from .backbone_llava_next import FAMILY as LLAVA_NEXT
from .backbone_phi3_v import FAMILY as PHI3_V
from .backbone_qwen2_vl import FAMILY as QWEN2_VL
from .backbone_qwen3_vl import FAMILY as QWEN3_VL

# The default family of each model_type (recipes such as GME are chosen by name only), and every family by name.
FAMILIES: dict[str, BackboneFamily] = {}
NAMED_FAMILIES: dict[str, BackboneFamily] = {}
DEFAULT_MODEL_TYPE = "qwen2_vl"
# The files every model folder carries whatever its family: the entry points and the registry.
COMMON_CODE_FILES = (
    "configuration_vlm2vec.py",
    "modeling_vlm2vec.py",
    "sub_batching.py",
    "pipeline_vlm2vec.py",
    "processing_vlm2vec.py",
    "media_loading.py",
    "clip_cache.py",
    "backbones.py",
    "backbone_common.py",
)


def register_family(family: BackboneFamily, default: bool = True) -> BackboneFamily:
    """Add `family` to the registry (by its name) and, with `default`, make it the family of each of its
    `model_types` that has none yet. Returns it (so a module can write `FAMILY = register_family(MyFamily())`).

    Raises:
        ValueError: a family without a name, a name taken by another family, or modalities that contradict its
            video token.
    """
    if not family.name:
        raise ValueError(f"{type(family).__name__} declares no name")
    if family.name in NAMED_FAMILIES and NAMED_FAMILIES[family.name] is not family:
        raise ValueError(f"a backbone family named {family.name!r} is already registered")
    if family.takes_video != (family.video_token is not None):
        raise ValueError(f"family {family.name!r}: 'video' in modalities needs a video_token, and only then")
    NAMED_FAMILIES[family.name] = family
    if default:
        for model_type in family.model_types:
            FAMILIES.setdefault(model_type, family)
    return family


def unregister_family(name: str) -> None:
    """Remove the family called `name` (and its default model types) from the registry."""
    family = NAMED_FAMILIES.pop(name)
    for model_type in [key for key, value in FAMILIES.items() if value is family]:
        del FAMILIES[model_type]


def all_families() -> list[BackboneFamily]:
    """Every registered family, in registration order."""
    return list(NAMED_FAMILIES.values())


def code_files() -> tuple[str, ...]:
    """The code files a model folder carries: the common ones, then every family's `shipped_files`."""
    files = [*COMMON_CODE_FILES, *(name for family in all_families() for name in family.shipped_files)]
    return tuple(dict.fromkeys(files))


for _family, _default in ((QWEN2_VL, True), (PHI3_V, True), (LLAVA_NEXT, True), (GME, False), (QWEN3_VL, True)):
    register_family(_family, _default)


def get_family(model_type: str | None = None, name: str | None = None) -> BackboneFamily:
    """The family called `name`, else the default family of backbone `model_type` (None: Qwen2-VL's).

    Raises:
        ValueError: an unknown name or model_type, or a named family that does not take `model_type` backbones.
    """
    if name is not None:
        family = NAMED_FAMILIES.get(name)
        if family is None:
            raise ValueError(f"unknown backbone family {name!r}; known: {sorted(NAMED_FAMILIES)}")
        if model_type is not None and model_type not in family.model_types:
            raise ValueError(
                f"backbone family {name!r} takes model_type {list(family.model_types)}, not {model_type!r}"
            )
        return family
    family = FAMILIES.get(model_type or DEFAULT_MODEL_TYPE)
    if family is None:
        raise ValueError(f"unsupported backbone model_type {model_type!r}; supported: {sorted(FAMILIES)}")
    return family


def family_of(vlm_config, name: str | None = None) -> BackboneFamily:
    """The family of a backbone config (a `PreTrainedConfig` or its dict), or the one called `name` (which must
    take that backbone)."""
    model_type = (
        vlm_config.get("model_type") if isinstance(vlm_config, dict) else getattr(vlm_config, "model_type", None)
    )
    return get_family(model_type, name)


def family_for_prompt_format(model_type: str | None, prompt_format: str) -> BackboneFamily:
    """The family that writes `prompt_format` prompts for a `model_type` backbone: the model type's default family
    when it takes that format, else a recipe family that owns it (`prompt_format="gme"` on Qwen2-VL: GME).

    Raises:
        ValueError: naming the formats this backbone takes.
    """
    default = get_family(model_type)
    if prompt_format in default.prompt_formats:
        return default
    candidates = [
        family for family in NAMED_FAMILIES.values() if (model_type or DEFAULT_MODEL_TYPE) in family.model_types
    ]
    for family in candidates:
        if prompt_format in family.prompt_formats:
            return family
    formats = sorted({fmt for family in candidates for fmt in family.prompt_formats})
    raise ValueError(f"prompt_format {prompt_format!r} does not fit a {model_type!r} backbone; it takes {formats}")


def saved_family_name(family: BackboneFamily, model_type: str | None) -> str | None:
    """What a folder records as `backbone_family`: None for `model_type`'s default family, else its name."""
    return None if FAMILIES.get(model_type or DEFAULT_MODEL_TYPE) is family else family.name


def all_prompt_formats() -> list[str]:
    """Every family's prompt formats (for the `--prompt-format` choices)."""
    return list(dict.fromkeys(fmt for family in NAMED_FAMILIES.values() for fmt in family.prompt_formats))


def all_no_split_modules() -> list[str]:
    """Every family's `no_split_modules`, for the model class attribute."""
    return list(dict.fromkeys(name for family in NAMED_FAMILIES.values() for name in family.no_split_modules))


__all__ = [
    "COMMON_CODE_FILES",
    "FAMILIES",
    "all_families",
    "code_files",
    "register_family",
    "unregister_family",
    "NAMED_FAMILIES",
    "all_no_split_modules",
    "all_prompt_formats",
    "family_for_prompt_format",
    "family_of",
    "get_family",
    "saved_family_name",
]

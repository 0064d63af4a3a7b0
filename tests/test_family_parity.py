"""Parity with the reference VLM2Vec embeddings on every public fixture (`tests/fixtures/parity-*-public`; each README
gives its recipe and traps), max-abs 1e-5 in fp32 on CPU: one table of families below, and one parametrized test per
check they share. Behaviour that only one family has (and is not parity) is in `test_family_<name>.py`.

The checks: the prompt builder's strings, each case alone through AutoModel (token ids and the family's per-case
records too), every batch row (both padding sides / both batching paths where the family has them), each case and
the batches through `SentenceTransformer.encode`, the V2 prompt format, save and reload, SDPA / bf16, a process that
cannot import this project, the published adapters, the LoRA targets, and the training loss with its gradients."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (
    GME,
    LLAVA_NEXT,
    LLAVA_NEXT_STRUCTURED,
    PHI3V,
    PHI3V_STRUCTURED,
    QWEN2VL,
    QWEN2VL_VIDEO,
    QWEN3VL,
    TOLERANCE,
    V1_STRUCTURED,
    V2_STRUCTURED,
    ParityFixture,
    Structured,
    expected_forwards,
    gme_chat_prompt,
    gme_driver_text,
    gme_st_input,
    llava_checkpoint_to_ours,
    load_auto,
    load_sentence_model,
    max_abs,
    qwen3vl_dict_input,
    qwen3vl_media,
    qwen3vl_messages,
    raw_input,
    recorded_forwards,
    run_isolated,
    structured_input,
    video_structured,
)

from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

# (batch id, padding side or None for the folder's own, split_padded_batches or None to leave it)
BatchRun = tuple[str, str | None, bool | None]
# (case id, encode input, prompt)
StInput = tuple[str, Any, str | None]


@dataclass(frozen=True)
class LossCheck:
    """The contrastive loss and gradients of the fixture's loss.json, per GradCache mini-batch size."""

    keys: Mapping[int, tuple[str, str]]  # mini-batch size -> (loss key, gradient-norm key) in loss.json
    checkpoint_to_ours: Callable[[str], str]  # a loss.json parameter name -> ours (after "vlm.")
    loss_atol: float | None = None  # None: the loss within 1e-5 relative
    per_parameter_at: tuple[int, ...] = (0, 2)  # mini-batch sizes whose per-parameter norms are compared
    same_parameters: bool = True  # the same parameters get gradients (else: ours are a subset of >= 50)


@dataclass(frozen=True)
class AdapterCheck:
    """The published-style DoRA adapter: merged modules and `expected_lora.safetensors`."""

    modules: int  # how many modules the adapter adapts (fixture README)
    merged_keys: tuple[str, ...]  # some keys the merge must touch
    weights_formats: tuple[str, ...] = ("safetensors",)


@dataclass(frozen=True)
class Family:
    """One parity fixture and how to drive it: the folder, the inputs, the references and which checks apply."""

    id: str
    fixture: ParityFixture
    folder: str  # the conftest fixture that builds the model folder
    model_type: str
    prompt: Callable[[str], str]  # case id -> the text given to the processor
    media: Callable[[str], dict[str, list]]  # case id -> processor media keywords ({"images": [...]} ...)
    st_singles: Callable[[], list[StInput]]  # the `encode` inputs compared with their case alone
    auto_batches: tuple[BatchRun, ...]
    st_batches: tuple[tuple[str, str | None], ...]  # (batch id, padding side or None)
    # case field -> how to read it from (encoding, processor); compared where the case records it
    case_records: Mapping[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    batch_reference: str | None = "batch/{}"  # the reference's own batch output, where it is right
    structured: Mapping[str, Structured] = field(default_factory=dict)  # prompt format -> table
    max_length: int | None = None
    save_load_cases: tuple[str, ...] = ()
    sdpa_bf16: tuple[str, tuple[str, ...]] | None = None  # (batch id, towers whose attention must be SDPA)
    isolated_cases: tuple[str, ...] = ()
    adapter: AdapterCheck | None = None
    loss: LossCheck | None = None
    tolerance: float = TOLERANCE
    slow: frozenset[str] = frozenset()  # case / batch ids whose tests carry the `slow` marker
    st_input: Callable[[str], Any] | None = None  # case id -> its `encode` input in a batch (None: `raw_input`)

    def __str__(self) -> str:
        return self.id


def _images(fixture: ParityFixture) -> Callable[[str], dict[str, list]]:
    return lambda case: {"images": [path]} if (path := fixture.image_path(case)) else {}


def _video_media(case: str) -> dict[str, list]:
    if QWEN2VL_VIDEO.cases[case]["modality"] == "video":
        return {"videos": [str(QWEN2VL_VIDEO.clip_dir(case))]}
    return _images(QWEN2VL_VIDEO)(case)


def _structured_singles(fixture: ParityFixture, table: Structured, only: tuple[str, ...] = ()) -> list[StInput]:
    return [
        (case, structured_input(case, text, has_image, fixture), instruction)
        for case, (instruction, text, has_image) in table.items()
        if not only or case in only
    ]


def _video_singles() -> list[StInput]:
    raw = [(case, raw_input(QWEN2VL_VIDEO, case), None) for case in QWEN2VL_VIDEO.cases]
    videos = [case for case, data in QWEN2VL_VIDEO.cases.items() if data["modality"] == "video"]
    return raw + [(case, *video_structured(case)) for case in videos]


def _phi_checkpoint_to_ours(key: str) -> str:
    from vlm2vec_hf.modeling_vlm2vec.modeling_phi3_v import map_checkpoint_key

    return map_checkpoint_key(key)


def _both_sides(fixture: ParityFixture) -> tuple[BatchRun, ...]:
    return tuple((batch, side, None) for batch in sorted(fixture.batches) for side in ("left", "right"))


def _both_paths(fixture: ParityFixture, skip: tuple[BatchRun, ...] = ()) -> tuple[BatchRun, ...]:
    runs = [(batch, None, split) for batch in sorted(fixture.batches) for split in (True, False)]
    return tuple(run for run in runs if run not in skip)


FAMILIES = (
    Family(
        id="qwen2vl",
        fixture=QWEN2VL,
        folder="fixture_model_dir",
        model_type="qwen2_vl",
        prompt=lambda case: QWEN2VL.cases[case]["text"],
        media=_images(QWEN2VL),
        st_singles=lambda: _structured_singles(QWEN2VL, V1_STRUCTURED),
        auto_batches=_both_sides(QWEN2VL),
        st_batches=tuple((batch, side) for batch in sorted(QWEN2VL.batches) for side in ("left", "right")),
        structured={"v1": V1_STRUCTURED, "v2": V2_STRUCTURED},
        max_length=256,
        save_load_cases=("p03", "p01", "p07"),
    ),
    Family(
        id="qwen2vl-video",
        fixture=QWEN2VL_VIDEO,
        folder="video_model_dir",
        model_type="qwen2_vl",
        prompt=lambda case: QWEN2VL_VIDEO.cases[case]["text"],
        media=_video_media,
        st_singles=_video_singles,
        auto_batches=tuple(
            (batch, data["padding_side"], None) for batch, data in sorted(QWEN2VL_VIDEO.batches.items())
        ),
        st_batches=tuple((batch, data["padding_side"]) for batch, data in sorted(QWEN2VL_VIDEO.batches.items())),
        case_records={
            "video_grid_thw": lambda encoding, _: encoding["video_grid_thw"][0].tolist(),
            "n_video_tokens": lambda encoding, _: int((encoding["mm_token_type_ids"][0] == 2).sum()),
        },
        save_load_cases=("p03", "p01", "p11"),
        slow=frozenset({"p08", "b4_large_right"}),  # 2450 video tokens
        loss=LossCheck(
            keys={
                0: ("loss_plain", "grad_l2_norm_plain"),
                1: ("loss_gradcache_chunk1", "grad_l2_norm_gradcache_chunk1"),
                2: ("loss_gradcache_chunk2", "grad_l2_norm_gradcache_chunk2"),
            },
            checkpoint_to_ours=lambda key: key.replace("model.", "", 1),
            loss_atol=5e-5,
            per_parameter_at=(2,),  # the GradCache path that cuts video rows
            same_parameters=False,
        ),
    ),
    Family(
        id="phi3v",
        fixture=PHI3V,
        folder="phi3v_model_dir",
        model_type="phi3_v",
        prompt=lambda case: PHI3V.cases[case]["text"],
        media=_images(PHI3V),
        st_singles=lambda: _structured_singles(PHI3V, PHI3V_STRUCTURED["v1"]),
        auto_batches=(*_both_paths(PHI3V), ("b3_mixed", "left", None)),
        st_batches=(("b4_mixed8", None),),  # sorted by length, one padded batch
        case_records={
            "pixel_values_shape": lambda encoding, _: list(encoding["pixel_values"].shape),
            "image_hd_size_hw": lambda encoding, _: encoding["image_sizes"][0].tolist(),
        },
        structured=PHI3V_STRUCTURED,
        max_length=PHI3V.recipe["max_len"],
        save_load_cases=("p03", "p01", "p07"),
        sdpa_bf16=("b3_mixed", ("language_model", "vision_embed_tokens.img_processor")),
        isolated_cases=("p01", "p03", "p09"),
        adapter=AdapterCheck(
            modules=16,  # 4 LLM + 4 CLIP modules per layer, 2 layers each
            merged_keys=(
                "vlm.vision_embed_tokens.img_processor.encoder.layers.1.self_attn.out_proj.weight",
                "vlm.language_model.layers.0.self_attn.qkv_proj.weight",
            ),
            weights_formats=("safetensors", "bin"),
        ),
        loss=LossCheck(
            keys={0: ("loss_plain", "grad_l2_norm_plain"), 2: ("loss_plain", "grad_l2_norm_plain")},
            checkpoint_to_ours=_phi_checkpoint_to_ours,
        ),
    ),
    Family(
        id="llava-next",
        fixture=LLAVA_NEXT,
        folder="llava_next_model_dir",
        model_type="llava_next",
        prompt=lambda case: LLAVA_NEXT.cases[case]["text"],
        media=_images(LLAVA_NEXT),
        # One case of each kind (every case runs alone through AutoModel): {image, text} + prompt, image + prompt,
        # image alone, long text + prompt (truncated at 4096), plain text, the whitespace-only text.
        st_singles=lambda: _structured_singles(
            LLAVA_NEXT, LLAVA_NEXT_STRUCTURED["v1"], only=("p01", "p02", "p07", "p10", "p13", "p15")
        ),
        # Both paths: length-split sub-batches (each with its rows' images) and one padded batch. The text-only
        # batch runs split only: whole, its 4096-token row makes every row pay a 4096 x 4096 mask, and it holds no
        # images. Right padding once.
        auto_batches=(
            *_both_paths(LLAVA_NEXT, skip=(("b2_text", None, False),)),
            ("b5_text_first", "right", None),
        ),
        st_batches=tuple((batch, None) for batch in sorted(LLAVA_NEXT.batches)),
        case_records={
            "pixel_values_shape": lambda encoding, _: list(encoding["pixel_values"].shape),
            "image_sizes_hw": lambda encoding, _: encoding["image_sizes"][0].tolist(),
        },
        # The reference's batches get the image rows after a text row wrong (test_family_llava_next.py records it):
        # every row is compared with its single case instead.
        batch_reference=None,
        structured=LLAVA_NEXT_STRUCTURED,
        max_length=LLAVA_NEXT.recipe["max_len"],
        save_load_cases=("p13", "p02", "p07"),
        isolated_cases=("p03", "p02", "p14"),
        adapter=AdapterCheck(
            modules=18,  # Mistral's q/k/v/o/down_proj and CLIP's q/k/v/out_proj, not gate/up_proj nor the projector
            merged_keys=(
                "vlm.vision_tower.encoder.layers.1.self_attn.out_proj.weight",
                "vlm.language_model.layers.0.mlp.down_proj.weight",
            ),
        ),
        loss=LossCheck(
            keys={0: ("loss_plain", "grad_l2_norm_plain"), 2: ("loss_plain", "grad_l2_norm_plain")},
            checkpoint_to_ours=llava_checkpoint_to_ours,
        ),
    ),
    Family(
        id="gme",
        fixture=GME,
        folder="gme_model_dir",
        model_type="qwen2_vl",
        # The full chat prompt, as VLM2Vec's GME driver sends it.
        prompt=lambda case: gme_chat_prompt(gme_driver_text(case), GME.image_path(case) is not None),
        media=lambda case: {"images": [GME.image(case)]} if GME.image_path(case) else {},
        st_singles=lambda: [(case, gme_st_input(case), None) for case in sorted(GME.cases)],
        auto_batches=tuple((batch, None, None) for batch in sorted(GME.batches)),
        st_batches=tuple((batch, None) for batch in sorted(GME.batches)),
        case_records={
            "image_grid_thw": lambda encoding, _: encoding["image_grid_thw"].tolist(),
            # `<|endoftext|>`; g07 (cut at 1800 tokens): `R`
            "pooled_token": lambda encoding, processor: processor.tokenizer.convert_ids_to_tokens(
                encoding["input_ids"][0, -1:].tolist()
            )[0],
        },
        batch_reference="batch_per_row/{}",
        save_load_cases=("g01", "g03", "g02"),
        st_input=gme_st_input,
    ),
    Family(
        id="qwen3vl",
        fixture=QWEN3VL,
        folder="qwen3vl_model_dir",
        model_type="qwen3_vl",
        # The complete chat prompt the official embedder built (apply_chat_template), media by path.
        prompt=lambda case: QWEN3VL.cases[case]["prompt"],
        media=qwen3vl_media,
        st_singles=lambda: [(case, *qwen3vl_dict_input(case)) for case in sorted(QWEN3VL.cases)],
        # Both batching paths; the text batch (an 8192-token row) whole only once: 4 x 8192 rows.
        auto_batches=_both_paths(QWEN3VL, skip=(("b1_text", None, False),)),
        st_batches=tuple((batch, None) for batch in sorted(QWEN3VL.batches)),
        case_records={
            "image_grid_thw": lambda encoding, _: encoding["image_grid_thw"].tolist(),
            "video_grid_thw": lambda encoding, _: encoding["video_grid_thw"].tolist(),
            "pixel_values_shape": lambda encoding, _: list(encoding["pixel_values"].shape),
            "pixel_values_videos_shape": lambda encoding, _: list(encoding["pixel_values_videos"].shape),
            "n_tokens": lambda encoding, _: encoding["input_ids"].shape[1],
            "pooled_token": lambda encoding, processor: processor.tokenizer.convert_ids_to_tokens(
                encoding["input_ids"][0, -1:].tolist()
            )[0],
        },
        save_load_cases=("c04", "c01", "c11"),
        st_input=qwen3vl_messages,
        loss=LossCheck(
            keys={0: ("loss", "grad_l2_norm"), 2: ("loss", "grad_l2_norm")},
            checkpoint_to_ours=lambda key: key.replace("model.", "", 1),
        ),
    ),
)


def _cases(select: Callable[[Family], Any]) -> list:
    """pytest params: one per (family, item) for the items `select(family)` lists."""
    return [
        pytest.param(family, item, id=_id(family, item), marks=_marks(family, item))
        for family in FAMILIES
        for item in select(family)
    ]


def _marks(family: Family, item) -> list:
    key = str(item[0] if isinstance(item, tuple) else item)
    return [pytest.mark.slow] if key in family.slow or key.split("-")[0] in family.slow else []


def _id(family: Family, item) -> str:
    parts = item if isinstance(item, tuple) else (item,)
    return "-".join(
        [
            str(family),
            *(str(part) if not isinstance(part, bool) else f"split={part}" for part in parts if part is not None),
        ]
    )


def _families(having: Callable[[Family], Any]) -> list:
    return [pytest.param(family, id=str(family)) for family in FAMILIES if having(family)]


def _folder(request, family: Family) -> Path:
    return request.getfixturevalue(family.folder)


def _batch_media(family: Family, case_ids: list[str]) -> dict[str, list]:
    media: dict[str, list] = {}
    for case in case_ids:
        for key, values in family.media(case).items():
            media.setdefault(key, []).extend(values)
    return media


def _st_input(family: Family, case_id: str) -> Any:
    return family.st_input(case_id) if family.st_input else raw_input(family.fixture, case_id)


def _embed(model, encoding) -> torch.Tensor:
    with torch.no_grad():
        return model(**encoding).embeddings


def _assert_rows(family: Family, embeddings: torch.Tensor, case_ids: list[str], batch_id: str, expected=None) -> None:
    """Every row equals its single case; the whole batch equals the reference's batch where that is right."""
    expected = family.fixture.expected if expected is None else expected
    per_row = (embeddings - family.fixture.singles(case_ids, expected)).abs().max(dim=1).values
    assert per_row.max().item() < family.tolerance, (batch_id, per_row.tolist())
    key = family.batch_reference.format(batch_id) if family.batch_reference else None
    if key in expected:
        assert max_abs(embeddings, expected[key]) < family.tolerance, batch_id


# --- prompts ---


PROMPT_FORMATS = [
    pytest.param(family, prompt_format, id=f"{family}-{prompt_format}")
    for family in FAMILIES
    for prompt_format in sorted(family.structured)
]


@pytest.mark.parametrize("family,prompt_format", PROMPT_FORMATS)
def test_prompt_builder_reproduces_reference_strings(family, prompt_format):
    builder = get_family(family.model_type)
    for case, (instruction, text, has_image) in family.structured[prompt_format].items():
        prompt = builder.format_prompt(text, instruction, int(has_image), prompt_format)
        assert prompt == family.fixture.cases[case]["text"], case


# --- AutoModel / AutoProcessor ---


@pytest.mark.parametrize("family,case_id", _cases(lambda family: sorted(family.fixture.cases)))
def test_auto_model_single_case(request, family, case_id):
    """Token ids (placeholder expansion, truncation), the family's per-case records, and the embedding."""
    model, processor = load_auto(_folder(request, family))
    case = family.fixture.cases[case_id]
    encoding = processor(text=[family.prompt(case_id)], **family.media(case_id))
    assert encoding["input_ids"][0].tolist() == family.fixture.input_ids(case_id)
    for name, read in family.case_records.items():
        if case.get(name) is not None:
            assert read(encoding, processor) == case[name], name
    assert max_abs(_embed(model, encoding)[0], family.fixture.expected[f"case/{case_id}"]) < family.tolerance


@pytest.mark.parametrize("family,run", _cases(lambda family: family.auto_batches))
def test_auto_model_batch(request, family, run):
    """Every row of every batch (padding sides and batching paths as the family has them) equals its single case."""
    batch_id, padding_side, split_padded_batches = run
    model, processor = load_auto(_folder(request, family))
    batch = family.fixture.batches[batch_id]
    case_ids = batch["cases"]
    side = {"padding_side": padding_side} if padding_side else {}
    media = _batch_media(family, case_ids)
    encoding = processor(text=[family.prompt(case) for case in case_ids], **media, **side)
    # GME's gb3: the reference driver dropped the batch's images (its wrong rows), so its padded length is not ours.
    reference_lost_images = media and batch.get("images_passed_to_processor") is False
    if "padded_len" in batch and not reference_lost_images:
        assert encoding["input_ids"].shape[1] == batch["padded_len"]
    if "attention_mask_rows" in batch:
        assert encoding["attention_mask"].sum(dim=1).tolist() == batch["attention_mask_rows"]
    if (padding_side or processor.tokenizer.padding_side) == "left":
        assert encoding["attention_mask"][:, -1].all()  # every row ends in its own last token
    previous = model.config.split_padded_batches
    if split_padded_batches is not None:
        model.config.split_padded_batches = split_padded_batches
    try:
        embeddings = _embed(model, encoding)
    finally:
        model.config.split_padded_batches = previous
    _assert_rows(family, embeddings, case_ids, batch_id)


@pytest.mark.parametrize("family", _families(lambda family: family.sdpa_bf16))
def test_sdpa_and_bf16_pass_through_to_every_tower(request, family):
    from transformers import AutoModel

    folder = _folder(request, family)
    batch_id, towers = family.sdpa_bf16
    _, processor = load_auto(folder)
    case_ids = family.fixture.batches[batch_id]["cases"]
    encoding = processor(text=[family.prompt(case) for case in case_ids], **_batch_media(family, case_ids))
    singles = family.fixture.singles(case_ids)
    sdpa = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation="sdpa").eval()
    for tower in towers:
        module = sdpa.vlm.get_submodule(tower)
        assert module.config._attn_implementation == "sdpa", tower
    assert max_abs(_embed(sdpa, encoding), singles) < family.tolerance
    half = AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    embeddings = _embed(half, encoding)
    assert embeddings.dtype == torch.bfloat16
    # bf16 keeps 8 mantissa bits: the unit vectors stay close to the fp32 reference, not equal.
    assert torch.nn.functional.cosine_similarity(embeddings.float(), singles).min().item() > 0.99


# --- SentenceTransformer.encode ---


def _st_single_ids(family: Family) -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for case, _, _ in family.st_singles():
        seen[case] = seen.get(case, 0) + 1
        ids.append(case if seen[case] == 1 else f"{case}-structured")
    return ids


@pytest.mark.parametrize("family,entry", _cases(_st_single_ids))
def test_sentence_transformer_single_input(request, family, entry):
    """Structured inputs (the instruction as `prompt`) and raw prompts, each alone, as the reference embeds them."""
    model = load_sentence_model(_folder(request, family))
    case_id, item, prompt = family.st_singles()[_st_single_ids(family).index(entry)]
    embedding = model.encode(item, prompt=prompt, convert_to_tensor=True)
    assert max_abs(embedding, family.fixture.expected[f"case/{case_id}"]) < family.tolerance


@pytest.mark.parametrize("family,run", _cases(lambda family: family.st_batches))
def test_sentence_transformer_batch(request, family, run):
    """A fixture batch of raw inputs through `encode` (sorted by length, one padded batch)."""
    batch_id, padding_side = run
    model = load_sentence_model(_folder(request, family))
    case_ids = family.fixture.batches[batch_id]["cases"]
    inputs = [_st_input(family, case) for case in case_ids]
    model[0].padding_side = padding_side
    try:
        embeddings = model.encode(inputs, batch_size=len(inputs), convert_to_tensor=True)
    finally:
        model[0].padding_side = None
    _assert_rows(family, embeddings, case_ids, batch_id)


@pytest.mark.parametrize("family", _families(lambda family: "v2" in family.structured))
def test_v2_prompt_format_folder(family, tmp_path):
    """A folder converted with `prompt_format="v2"` embeds the V2 cases; without an instruction it embeds a raw
    text exactly like V1."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.hub_cards.convert import convert_backbone

    folder = convert_backbone(
        family.fixture.backbone, tmp_path / "v2", max_length=family.max_length, dtype=torch.float32, prompt_format="v2"
    )
    model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    for case_id, item, prompt in _structured_singles(family.fixture, family.structured["v2"]):
        embedding = model.encode(item, prompt=prompt)
        assert max_abs(embedding, family.fixture.expected[f"case/{case_id}"]) < family.tolerance, case_id
    assert family.fixture.cases["p03"]["text"] == "A cat and a dog"
    assert max_abs(model.encode("A cat and a dog"), family.fixture.expected["case/p03"]) < family.tolerance


@pytest.mark.parametrize("family", _families(lambda family: family.save_load_cases))
def test_save_and_reload_give_identical_embeddings(request, family, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = load_sentence_model(_folder(request, family))
    inputs = [_st_input(family, case) for case in family.save_load_cases]
    before = model.encode(inputs)
    model.save(str(tmp_path / "resaved"))
    after = SentenceTransformer(str(tmp_path / "resaved"), trust_remote_code=True, device="cpu").encode(inputs)
    assert (before == after).all()
    assert (tmp_path / "resaved" / "vlm2vec_st.py").is_file()
    assert '"vlm2vec_st.VLM2VecEncoder"' in (tmp_path / "resaved" / "modules.json").read_text()


# --- the folder alone ---


@pytest.mark.slow
@pytest.mark.parametrize("family", _families(lambda family: family.isolated_cases))
def test_loads_in_a_process_without_the_project(request, family, tmp_path):
    """Only the folder's own code runs (remote code): no missing or unexpected weights, the reference rows."""
    fixture, case_ids = family.fixture, list(family.isolated_cases)
    texts = [fixture.cases[case]["text"] for case in case_ids]
    images = [path for case in case_ids if (path := fixture.image_path(case))]
    out = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        model, info = AutoModel.from_pretrained({str(_folder(request, family))!r}, trust_remote_code=True,
                                                output_loading_info=True)
        processor = AutoProcessor.from_pretrained({str(_folder(request, family))!r}, trust_remote_code=True)
        with torch.no_grad():
            embeddings = model(**processor(text={texts!r}, images={images!r}))
        rows = load_file({str(fixture.root / "expected.safetensors")!r})
        rows = torch.stack([rows["case/" + c] for c in {case_ids!r}])
        print(json.dumps({{"worst": (embeddings.embeddings - rows).abs().max().item(),
                          "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                          "model_module": type(model).__module__,
                          "image_processor": type(processor.image_processor).__module__}}))
        """,
        tmp_path,
    )
    assert out["missing"] == [] and out["unexpected"] == []
    assert out["model_module"].startswith("transformers_modules.")
    assert out["image_processor"].startswith("transformers_modules.")  # the folder's own backbone module
    assert out["worst"] < family.tolerance


# --- adapters ---


def _adapter_folder(family: Family, tmp_path: Path, weights_format: str) -> Path:
    """The published-style DoRA adapter as safetensors (as stored) or as a tensors-only `adapter_model.bin`."""
    import shutil

    from safetensors.torch import load_file

    source = family.fixture.root / "adapter"
    if weights_format == "safetensors":
        return source
    folder = tmp_path / "adapter-bin"
    folder.mkdir()
    shutil.copy(source / "adapter_config.json", folder)
    torch.save(load_file(source / "adapter_model.safetensors"), folder / "adapter_model.bin")
    return folder


@pytest.mark.parametrize("family", _families(lambda family: family.adapter))
def test_adapter_merges_the_reference_modules(family):
    from vlm2vec_hf.hub_cards.adapter_conversion import merge_adapter_into_model, read_adapter
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel

    model = VLM2VecModel.from_backbone(family.fixture.backbone, dtype=torch.float32)
    mapping = get_family(family.model_type).adapter_key_mapping
    merged = merge_adapter_into_model(model, read_adapter(family.fixture.root / "adapter"), mapping)
    assert len(merged) == len(family.fixture.data["lora"]["adapted_modules"]) == family.adapter.modules
    for key in family.adapter.merged_keys:
        assert key in merged, key


@pytest.mark.slow
@pytest.mark.parametrize(
    "family,weights_format", _cases(lambda family: family.adapter.weights_formats if family.adapter else ())
)
def test_published_adapter_matches_reference(family, weights_format, tmp_path):
    """`vlm2vec convert --base B --adapter A`: every case and every batch row equals `expected_lora`."""
    from vlm2vec_hf.cli import main

    folder = tmp_path / "lora"
    args = ["convert", "--base", str(family.fixture.backbone), "--out", str(folder), "--dtype", "float32"]
    args += ["--adapter", str(_adapter_folder(family, tmp_path, weights_format))]
    assert main([*args, "--max-length", str(family.max_length)]) == 0
    model, processor = load_auto.__wrapped__(folder)
    expected_lora = family.fixture.expected_lora
    for case_id in family.fixture.cases:
        embedding = _embed(model, processor(text=[family.prompt(case_id)], **family.media(case_id)))[0]
        assert max_abs(embedding, expected_lora[f"case/{case_id}"]) < family.tolerance, case_id
    for batch_id, batch in family.fixture.batches.items():
        case_ids = batch["cases"]
        encoding = processor(text=[family.prompt(case) for case in case_ids], **_batch_media(family, case_ids))
        _assert_rows(family, _embed(model, encoding), case_ids, batch_id, expected_lora)


@pytest.mark.parametrize("family", _families(lambda family: family.adapter))
def test_training_lora_adapts_the_reference_modules(request, family):
    """`vlm2vec train --lora` with the default target list adapts what the reference adapts (fixture README)."""
    from vlm2vec_hf.hub_cards.adapter_conversion import rename_adapter_key
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import load_model

    model = load_model(TrainConfig(model=str(_folder(request, family)), lora=True, lora_r=8))
    adapted = {name.removeprefix("model.") for name, module in model[0].named_modules() if hasattr(module, "lora_A")}
    mapping = get_family(family.model_type).adapter_key_mapping
    reference = {
        rename_adapter_key(f"{name}.lora_A.weight", mapping).removesuffix(".lora_A.weight")
        for name in family.fixture.data["lora"]["adapted_modules"]
    }
    assert adapted == reference and len(adapted) == family.adapter.modules


# --- training: the loss and its gradients ---


@pytest.mark.slow
@pytest.mark.parametrize(
    "family,mini_batch_size", _cases(lambda family: sorted(family.loss.keys) if family.loss else ())
)
def test_training_loss_and_gradients_match_reference(request, family, mini_batch_size):
    """In-batch contrastive loss of loss.json's pairs (train mode, its padding side), plain and with GradCache
    mini-batches (which cut each row's pixel values / grids), and every parameter's gradient norm."""
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import build_loss

    reference, check = family.fixture.loss, family.loss
    loss_key, norm_key = check.keys[mini_batch_size]
    model = SentenceTransformer(str(_folder(request, family)), trust_remote_code=True, device="cpu")
    model[0].padding_side = reference["padding_side"]
    model.train()
    loss_fn = build_loss(model, TrainConfig(temperature=reference["temperature"], gc_mini_batch_size=mini_batch_size))
    queries = model.preprocess([_st_input(family, pair["query"]) for pair in reference["pairs"]])
    targets = model.preprocess([_st_input(family, pair["target"]) for pair in reference["pairs"]])
    model.zero_grad()
    with recorded_forwards(model) as events:
        loss = loss_fn([queries, targets], labels=None)
        loss.backward()
    rows = len(queries["input_ids"])
    if not mini_batch_size or rows % mini_batch_size == 0:
        assert [(kind, n) for kind, n, _ in events] == expected_forwards(mini_batch_size, batch=rows)
    if check.loss_atol is None:
        assert abs(loss.item() - reference[loss_key]) / reference[loss_key] < 1e-5
    else:
        assert abs(loss.item() - reference[loss_key]) < check.loss_atol
    grads = {name.split("vlm.", 1)[1]: p.grad for name, p in model.named_parameters() if p.grad is not None}
    norm = math.sqrt(sum(grad.double().pow(2).sum().item() for grad in grads.values()))
    assert abs(norm - reference[norm_key]) / reference[norm_key] < 1e-5
    if mini_batch_size not in check.per_parameter_at:
        return
    per_parameter = {check.checkpoint_to_ours(k): v for k, v in reference["grad_l2_norm_per_parameter"].items()}
    if check.same_parameters:
        assert set(per_parameter) == set(grads)  # the same parameters get gradients (CLIP's last layer does not)
    else:
        assert set(grads) <= set(per_parameter) and len(grads) >= 50
    for name, grad in grads.items():
        value = per_parameter[name]
        assert abs(grad.norm().item() - value) <= 1e-4 * max(value, 1.0), name

"""`vlm2vec convert` with a published-style DoRA adapter: merged folder == reference `expected_lora`, 1e-5 in fp32."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import (
    BATCHES,
    BLOCK_PROJECT,
    CASES,
    FIXTURE,
    MAX_LENGTH,
    TOLERANCE,
    V1_STRUCTURED,
    V2_STRUCTURED,
    case_image,
    case_image_path,
    max_abs,
    run_isolated,
    structured_input,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoProcessor

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.adapter_conversion import (
    TRAINING_KEY_MAPPING,
    AdapterConversionError,
    LoraSettings,
    load_adapter_state_dict,
    merge_adapter_with_peft,
    rename_adapter_key,
)
from vlm2vec_hf.hub_cards.convert import check_saved_weights, convert_backbone
from vlm2vec_hf.hub_cards.presets import PRESETS, get_preset
from vlm2vec_hf.modeling_vlm2vec.backbones import get_family

ADAPTER = FIXTURE / "adapter"
BACKBONE = FIXTURE / "backbone"
PEFT_FILES = {"adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"}


@pytest.fixture(scope="module")
def expected_lora() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "expected_lora.safetensors")


def adapter_copy(tmp_path: Path, keep: str) -> Path:
    """The fixture adapter with only `keep` (`adapter_model.bin` or `.safetensors`) as its weights file."""
    folder = tmp_path / f"adapter-{keep}"
    shutil.copytree(ADAPTER, folder)
    for name in {"adapter_model.bin", "adapter_model.safetensors"} - {keep}:
        (folder / name).unlink()
    return folder


@pytest.fixture(scope="module", params=["adapter_model.safetensors", "adapter_model.bin"])
def merged_dir(request, tmp_path_factory) -> Path:
    """The fixture backbone + adapter converted to a model folder, from the .safetensors-only or the .bin-only copy."""
    tmp_path = tmp_path_factory.mktemp("convert-adapter")
    adapter = adapter_copy(tmp_path, request.param)
    return convert_backbone(BACKBONE, tmp_path / "merged", adapter=adapter, max_length=MAX_LENGTH, dtype=torch.float32)


@pytest.fixture(scope="module")
def merged_dir_from_fixture_adapter(tmp_path_factory) -> Path:
    """The fixture adapter folder as published (both weight files; the .safetensors is read)."""
    out = tmp_path_factory.mktemp("convert-adapter") / "merged"
    return convert_backbone(BACKBONE, out, adapter=ADAPTER, max_length=MAX_LENGTH, dtype=torch.float32)


@pytest.fixture(scope="module")
def merged_sentence_model(merged_dir) -> SentenceTransformer:
    return SentenceTransformer(str(merged_dir), trust_remote_code=True, device="cpu")


QWEN2_VL_KEYS = get_family("qwen2_vl").adapter_key_mapping


@pytest.mark.slow
def test_sentence_transformer_matches_expected_lora(merged_sentence_model, expected_lora):
    worst = 0.0
    for case_id, (instruction, text, has_image) in V1_STRUCTURED.items():
        embedding = merged_sentence_model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        worst = max(worst, max_abs(embedding, expected_lora[f"case/{case_id}"]))
    for batch_id, batch in BATCHES.items():
        inputs = [
            {"image": case_image(case), "text": CASES[case]["text"]} if CASES[case]["image"] else CASES[case]["text"]
            for case in batch["cases"]
        ]
        embeddings = merged_sentence_model.encode(inputs, batch_size=len(inputs), convert_to_tensor=True)
        worst = max(worst, max_abs(embeddings, expected_lora[f"batch/{batch_id}"]))
    print(f"sentence-transformers max-abs vs expected_lora: {worst:.2e}")
    assert worst < TOLERANCE


@pytest.mark.slow
def test_auto_model_matches_expected_lora(merged_dir, expected_lora):
    model = AutoModel.from_pretrained(merged_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(merged_dir, trust_remote_code=True)
    worst = 0.0
    with torch.no_grad():
        for case_id, case in CASES.items():
            image = case_image_path(case_id)
            embedding = model(**processor(text=[case["text"]], images=[image] if image else None)).embeddings[0]
            worst = max(worst, max_abs(embedding, expected_lora[f"case/{case_id}"]))
        for batch_id, batch in BATCHES.items():
            texts = [CASES[case]["text"] for case in batch["cases"]]
            images = [path for case in batch["cases"] if (path := case_image_path(case))]
            for padding_side in ("left", "right"):
                embeddings = model(**processor(text=texts, images=images, padding_side=padding_side)).embeddings
                worst = max(worst, max_abs(embeddings, expected_lora[f"batch/{batch_id}"]))
    print(f"AutoModel max-abs vs expected_lora: {worst:.2e}")
    assert worst < TOLERANCE


def test_merge_changes_the_base_embeddings(merged_sentence_model, expected):
    # The adapter moves embeddings by ~0.4 here (fixture README): a no-op merge would fail this.
    embedding = merged_sentence_model.encode(CASES["p03"]["text"])
    assert max_abs(embedding, expected["case/p03"]) > 1e-2


def test_written_folder_has_no_peft_files_and_plain_weight_names(merged_dir):
    names = {path.name for path in merged_dir.iterdir()}
    assert not names & PEFT_FILES
    with safe_open(merged_dir / "model.safetensors", framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all(key.startswith("vlm.") for key in keys)
    assert not [key for key in keys if "lora_" in key or "base_model" in key or "base_layer" in key]


def test_saved_weight_check_catches_other_weights(merged_dir_from_fixture_adapter):
    name = "vlm.language_model.layers.0.self_attn.q_proj.weight"
    with safe_open(merged_dir_from_fixture_adapter / "model.safetensors", framework="pt") as handle:
        saved = handle.get_tensor(name)
    check_saved_weights(merged_dir_from_fixture_adapter, {name: saved})
    with pytest.raises(AdapterConversionError, match="differs"):
        check_saved_weights(merged_dir_from_fixture_adapter, {name: saved + 1e-3})
    with pytest.raises(AdapterConversionError, match="lacks"):
        check_saved_weights(merged_dir_from_fixture_adapter, {"base_model.model." + name: saved})


# In the child process peft cannot be imported (as if not installed), nor this project.
_NO_PEFT = 'import sys\nsys.modules["peft"] = None\n' + BLOCK_PROJECT


def run_without_peft(script: str, tmp_path: Path) -> dict:
    """Run `script` in a fresh process where neither peft nor this project can be imported; its last JSON line."""
    return run_isolated(script, tmp_path, prelude=_NO_PEFT)


@pytest.mark.slow
def test_merged_folder_loads_with_auto_model_without_peft(merged_dir_from_fixture_adapter, tmp_path):
    merged_dir = merged_dir_from_fixture_adapter
    out = run_without_peft(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        expected = load_file({str(FIXTURE / "expected_lora.safetensors")!r})
        model = AutoModel.from_pretrained({str(merged_dir)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(merged_dir)!r}, trust_remote_code=True)
        inputs = processor(text=[{CASES["p01"]["text"]!r}], images=[{case_image_path("p01")!r}])
        with torch.no_grad():
            embedding = model(**inputs).embeddings[0]
        print(json.dumps({{"diff": (embedding - expected["case/p01"]).abs().max().item(),
                          "peft_loaded": sys.modules.get("peft") is not None}}))
        """,
        tmp_path,
    )
    assert out["diff"] < TOLERANCE and not out["peft_loaded"]


@pytest.mark.slow
def test_merged_folder_loads_with_sentence_transformers_without_peft(merged_dir_from_fixture_adapter, tmp_path):
    merged_dir = merged_dir_from_fixture_adapter
    out = run_without_peft(
        f"""
        import json
        from PIL import Image
        from safetensors.torch import load_file
        from sentence_transformers import SentenceTransformer
        expected = load_file({str(FIXTURE / "expected_lora.safetensors")!r})
        model = SentenceTransformer({str(merged_dir)!r}, trust_remote_code=True, device="cpu")
        item = {{"image": Image.open({case_image_path("p01")!r}), "text": {CASES["p01"]["text"]!r}}}
        embedding = model.encode([item], convert_to_tensor=True)[0]
        print(json.dumps({{"diff": (embedding - expected["case/p01"]).abs().max().item()}}))
        """,
        tmp_path,
    )
    assert out["diff"] < TOLERANCE


class _RunsCodeWhenUnpickled:
    """Pickles as a call to `os.system`: a full unpickler would run the command while loading."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_malicious_bin(folder: Path, marker: Path) -> None:
    state = load_file(ADAPTER / "adapter_model.safetensors")
    first_key = next(iter(state))
    torch.save({**state, first_key: _RunsCodeWhenUnpickled(marker)}, folder / "adapter_model.bin")


def test_bin_with_code_payload_is_refused_without_running_it(tmp_path):
    adapter = adapter_copy(tmp_path, "adapter_model.bin")
    marker = tmp_path / "payload-ran"
    _write_malicious_bin(adapter, marker)
    with pytest.raises(AdapterConversionError, match="refusing to load .*adapter_model.bin"):
        load_adapter_state_dict(adapter / "adapter_model.bin")
    assert main(["convert", "--base", str(BACKBONE), "--adapter", str(adapter), "--out", str(tmp_path / "o")]) == 2
    assert not marker.exists()
    assert not (tmp_path / "o").exists()


def test_safetensors_preferred_over_bin(tmp_path, expected_lora):
    adapter = adapter_copy(tmp_path, "adapter_model.safetensors")
    marker = tmp_path / "payload-ran"
    _write_malicious_bin(adapter, marker)  # never read: the .safetensors beside it wins
    out = convert_backbone(BACKBONE, tmp_path / "o", adapter=adapter, max_length=MAX_LENGTH, dtype=torch.float32)
    assert not marker.exists()
    embedding = SentenceTransformer(str(out), trust_remote_code=True, device="cpu").encode(CASES["p03"]["text"])
    assert max_abs(embedding, expected_lora["case/p03"]) < TOLERANCE


def test_unmatched_adapter_keys_are_named(tmp_path):
    adapter = adapter_copy(tmp_path, "adapter_model.safetensors")
    state = load_file(adapter / "adapter_model.safetensors")
    a_tensor = state["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    bad = {
        "base_model.model.lm_head.lora_A.weight": a_tensor.clone(),  # the reference's LM head: no module of ours
        "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": a_tensor.clone(),  # no layer 7
        "encoder.model.layers.0.self_attn.q_proj.lora_A.weight": a_tensor.clone(),  # no mapping rule
    }
    save_file({**state, **bad}, adapter / "adapter_model.safetensors")
    with pytest.raises(AdapterConversionError) as error:
        convert_backbone(BACKBONE, tmp_path / "o", adapter=adapter, dtype=torch.float32)
    message = str(error.value)
    assert all(key in message for key in bad), message
    assert "vlm.language_model.layers.7.self_attn.q_proj" in message
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" not in message  # valid keys not listed
    assert not (tmp_path / "o").exists()


def test_adapter_shape_mismatch_is_reported(tmp_path):
    adapter = adapter_copy(tmp_path, "adapter_model.safetensors")
    state = load_file(adapter / "adapter_model.safetensors")
    key = "base_model.model.model.layers.1.mlp.down_proj.lora_magnitude_vector"
    save_file({**state, key: state[key][:10].clone()}, adapter / "adapter_model.safetensors")
    with pytest.raises(AdapterConversionError, match=r"layers\.1\.mlp\.down_proj: magnitude \(10,\)"):
        convert_backbone(BACKBONE, tmp_path / "o", adapter=adapter, dtype=torch.float32)


def test_key_mapping_reference_and_transformers5_layouts():
    llm = "self_attn.q_proj.lora_A.weight"
    assert (
        rename_adapter_key(f"base_model.model.model.layers.3.{llm}", QWEN2_VL_KEYS)
        == f"vlm.language_model.layers.3.{llm}"
    )
    assert rename_adapter_key(f"base_model.model.model.language_model.layers.3.{llm}", QWEN2_VL_KEYS) == (
        f"vlm.language_model.layers.3.{llm}"
    )
    assert rename_adapter_key("base_model.model.visual.blocks.0.attn.qkv.lora_B.weight", QWEN2_VL_KEYS) == (
        "vlm.visual.blocks.0.attn.qkv.lora_B.weight"
    )
    assert rename_adapter_key("base_model.model.model.visual.merger.mlp.0.lora_A.weight", QWEN2_VL_KEYS) == (
        "vlm.visual.merger.mlp.0.lora_A.weight"
    )
    assert rename_adapter_key("base_model.model.lm_head.lora_A.weight", QWEN2_VL_KEYS) is None


def test_lora_settings_read_the_adapter_config():
    config = json.loads((ADAPTER / "adapter_config.json").read_text())
    settings = LoraSettings.from_config(config)
    assert (settings.r, settings.lora_alpha, settings.use_dora, settings.scaling) == (8, 64.0, True, 8.0)
    with pytest.raises(AdapterConversionError, match="rank_pattern"):
        LoraSettings.from_config({**config, "rank_pattern": {"q_proj": 4}})


def test_presets_hold_the_published_settings():
    assert {
        "VLM2Vec-Qwen2VL-2B",
        "VLM2Vec-Qwen2VL-7B",
        "VLM2Vec-V2.0",
        "VLM2Vec-LLaVa-Next",
        "gme-Qwen2-VL-2B",
        "gme-Qwen2-VL-7B",
    } <= set(PRESETS)  # Phi: test_phi3v_presets
    v1_2b, v1_7b, v2 = (get_preset(name) for name in ("VLM2Vec-Qwen2VL-2B", "VLM2Vec-Qwen2VL-7B", "VLM2Vec-V2.0"))
    assert (v1_2b.base_model, v1_2b.adapter_repo) == ("Qwen/Qwen2-VL-2B-Instruct", "TIGER-Lab/VLM2Vec-Qwen2VL-2B")
    assert (v1_7b.base_model, v1_7b.adapter_repo) == ("Qwen/Qwen2-VL-7B-Instruct", "TIGER-Lab/VLM2Vec-Qwen2VL-7B")
    assert (v2.base_model, v2.adapter_repo) == ("Qwen/Qwen2-VL-2B-Instruct", "VLM2Vec/VLM2Vec-V2.0")
    for v1 in (v1_2b, v1_7b):
        assert (v1.prompt_format, v1.position_ids_mode, v1.image_resize) == ("v1", "reference", (1344, 1344))
        assert dict(v1.image_processor_options) == {"min_pixels": 3136, "max_pixels": 12845056}
        assert v1.max_length == 4096
    assert (v2.prompt_format, v2.position_ids_mode, v2.image_resize) == ("v2", "reference", None)
    assert dict(v2.image_processor_options) == {"min_pixels": 3136, "max_pixels": 1003520} and v2.max_length is None
    with pytest.raises(ValueError, match="VLM2Vec-V2.0"):
        get_preset("VLM2Vec-Qwen2VL-72B")
    with pytest.raises(AttributeError):
        v2.max_length = 1  # frozen
    with pytest.raises(TypeError):
        v2.image_processor_options["max_pixels"] = 1  # read-only


def test_v1_preset_writes_the_fixed_1344_resize(tmp_path, capsys):
    out = tmp_path / "v1"
    args = ["convert", "--preset", "VLM2Vec-Qwen2VL-2B", "--base", str(BACKBONE), "--adapter", str(ADAPTER)]
    assert main([*args, "--out", str(out)]) == 0
    assert "resized to 1344x1344" in capsys.readouterr().out
    assert SentenceTransformer(str(out), trust_remote_code=True, device="cpu")[0].processor.image_resize == [1344, 1344]


def test_cli_convert_with_v1_preset(tmp_path, expected_lora, capsys):
    out = tmp_path / "from-preset"
    args = ["convert", "--preset", "VLM2Vec-Qwen2VL-2B", "--base", str(BACKBONE), "--adapter", str(ADAPTER)]
    # The fixture's reference embeddings were made without V1's 1344x1344 pre-resize: turn it off here.
    no_resize = ["--image-resize", "0", "0"]
    assert main([*args, "--out", str(out), "--dtype", "float32", "--max-length", str(MAX_LENGTH), *no_resize]) == 0
    assert "resized to" not in capsys.readouterr().out
    model = SentenceTransformer(str(out), trust_remote_code=True, device="cpu")
    assert model[0].processor.image_resize is None
    processor = model[0].processor
    # Preset defaults, except --max-length, which the command line set.
    assert (
        processor.prompt_format,
        processor.processor_options["min_pixels"],
        processor.processor_options["max_pixels"],
    ) == ("v1", 3136, 12845056)
    assert processor.max_length == MAX_LENGTH and model[0].model.config.position_ids_mode == "reference"
    for case_id in ("p01", "p05", "p07", "p11"):
        instruction, text, has_image = V1_STRUCTURED[case_id]
        embedding = model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected_lora[f"case/{case_id}"]) < TOLERANCE, case_id


def test_cli_convert_with_v2_preset(tmp_path, expected_lora):
    out = tmp_path / "from-v2-preset"
    args = ["convert", "--preset", "VLM2Vec-V2.0", "--base", str(BACKBONE), "--adapter", str(ADAPTER)]
    assert main([*args, "--out", str(out), "--dtype", "float32", "--max-pixels", "200704"]) == 0
    model = SentenceTransformer(str(out), trust_remote_code=True, device="cpu")
    processor = model[0].processor
    assert (
        processor.prompt_format,
        processor.processor_options["min_pixels"],
        processor.processor_options["max_pixels"],
    ) == ("v2", 3136, 200704)
    assert processor.max_length is None
    for case_id, (instruction, text, has_image) in V2_STRUCTURED.items():
        embedding = model.encode(structured_input(case_id, text, has_image), prompt=instruction)
        assert max_abs(embedding, expected_lora[f"case/{case_id}"]) < TOLERANCE, case_id


def test_cli_convert_needs_a_base_without_preset(tmp_path, capsys):
    assert main(["convert", "--adapter", str(ADAPTER), "--out", str(tmp_path / "o")]) == 2
    assert "--base" in capsys.readouterr().err


def test_cli_convert_merges_a_training_adapter(fixture_model_dir, tmp_path):
    from vlm2vec_hf.training.adapters import reference_lora_config

    model = SentenceTransformer(str(fixture_model_dir), trust_remote_code=True, device="cpu")
    model.add_adapter(reference_lora_config(model[0].model.family, r=4))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # gaussian init leaves B at zero: make the adapter do something
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    adapter = tmp_path / "run-final"
    model.save(str(adapter))
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    inputs = [CASES["p03"]["text"], {"image": case_image("p01"), "text": CASES["p01"]["text"]}]
    unmerged = SentenceTransformer(str(adapter), trust_remote_code=True, device="cpu").encode(inputs)

    out = tmp_path / "merged"
    assert main(["convert", "--adapter", str(adapter), "--out", str(out)]) == 0
    assert not {path.name for path in out.iterdir()} & PEFT_FILES
    merged = SentenceTransformer(str(out), trust_remote_code=True, device="cpu").encode(inputs)
    assert abs(merged - unmerged).max() < TOLERANCE
    assert abs(merged - model.encode(inputs)).max() < TOLERANCE
    # The folder keeps its own processor and prompts: a preset does not apply to it.
    assert main(["convert", "--adapter", str(adapter), "--preset", "VLM2Vec-V2.0", "--out", str(tmp_path / "x")]) == 2


def test_peft_merge_is_exact_and_refuses_an_adapter_it_did_not_load_whole():
    """The one merge path: DoRA's m / ||W + s B A||_row * (W + s B A) through peft, computed in fp32 and stored in the
    layer's own dtype; a tensor missing is an error and leaves the model as it was."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48)).to(torch.bfloat16)
    weight = model[0].weight.detach().clone()
    state = {
        "0.lora_A.weight": torch.randn(2, 64) / 8,
        "0.lora_B.weight": torch.randn(48, 2) / 8,
        "0.lora_magnitude_vector": torch.rand(48) + 0.5,  # peft's saved name; it loads it as `...default.weight`
    }
    settings = LoraSettings(r=2, lora_alpha=4.0, use_dora=True)
    incomplete = {key: value for key, value in state.items() if "lora_B" not in key}
    with pytest.raises(AdapterConversionError, match=r"missing \['base_model\.model\.0\.lora_B\.default\.weight'\]"):
        merge_adapter_with_peft(model, incomplete, TRAINING_KEY_MAPPING, settings, ["0"])
    assert type(model[0]) is torch.nn.Linear and torch.equal(model[0].weight, weight)
    assert model[0].weight.dtype == torch.bfloat16
    merged = merge_adapter_with_peft(model, state, TRAINING_KEY_MAPPING, settings, ["0"])
    assert merged is model and type(model[0]) is torch.nn.Linear and model[0].weight.dtype == torch.bfloat16
    adapted = weight.float() + 2.0 * state["0.lora_B.weight"] @ state["0.lora_A.weight"]
    expected = (state["0.lora_magnitude_vector"] / torch.linalg.norm(adapted, dim=1)).unsqueeze(1) * adapted
    assert torch.equal(model[0].weight, expected.to(torch.bfloat16))

"""A saved model folder loads in a fresh Python process in which this project cannot be imported."""

from __future__ import annotations

import pytest
from helpers import CASES, FIXTURE, TOLERANCE, run_isolated


@pytest.mark.slow
def test_auto_model_loads_without_project(fixture_model_dir, tmp_path):
    out = run_isolated(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        cases = json.load(open({str(FIXTURE / "cases.json")!r}))["cases"]
        expected = load_file({str(FIXTURE / "expected.safetensors")!r})
        model, info = AutoModel.from_pretrained({str(fixture_model_dir)!r}, trust_remote_code=True,
                                                output_loading_info=True)
        processor = AutoProcessor.from_pretrained({str(fixture_model_dir)!r}, trust_remote_code=True)
        worst = 0.0
        for case_id, case in cases.items():
            images = [{str(FIXTURE / "images")!r} + "/" + case["image"]] if case["image"] else None
            with torch.no_grad():
                embedding = model(**processor(text=[case["text"]], images=images)).embeddings[0]
            worst = max(worst, (embedding - expected["case/" + case_id]).abs().max().item())
        print(json.dumps({{"worst": worst, "missing": sorted(info["missing_keys"]),
                          "unexpected": sorted(info["unexpected_keys"]),
                          "image_processor": type(processor.image_processor).__name__,
                          "model_module": type(model).__module__}}))
        """,
        tmp_path,
    )
    assert out["missing"] == [] and out["unexpected"] == []
    assert out["image_processor"] == "Qwen2VLImageProcessorPil"
    assert out["model_module"].startswith("transformers_modules.")
    assert out["worst"] < TOLERANCE


@pytest.mark.slow
def test_sentence_transformer_loads_without_project(fixture_model_dir, tmp_path):
    image = str(FIXTURE / "images" / CASES["p01"]["image"])
    out = run_isolated(
        f"""
        import json, torch
        from PIL import Image
        from safetensors.torch import load_file
        from sentence_transformers import SentenceTransformer
        expected = load_file({str(FIXTURE / "expected.safetensors")!r})
        model = SentenceTransformer({str(fixture_model_dir)!r}, trust_remote_code=True, device="cpu")
        embeddings = model.encode(
            [{{"image": Image.open({image!r}), "text": "What is in the image"}}],
            prompt="Represent the given image with the following question:", convert_to_tensor=True)
        text = model.encode("A cat and a dog", convert_to_tensor=True)
        print(json.dumps({{"image_text": (embeddings[0] - expected["case/p01"]).abs().max().item(),
                          "text": (text - expected["case/p03"]).abs().max().item(),
                          "module": type(model[0]).__module__}}))
        """,
        tmp_path,
    )
    assert out["module"].startswith("transformers_modules.")
    assert out["image_text"] < TOLERANCE and out["text"] < TOLERANCE


def test_loading_without_trust_remote_code_is_refused(fixture_model_dir):
    import pytest
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModel.from_pretrained(fixture_model_dir)
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(fixture_model_dir), device="cpu")

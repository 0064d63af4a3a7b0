"""Phi-3.5-V images of different crop grids in one batch: the batched image processor and image embedding equal the
reference's image-by-image computation (the parity fixture's images are all 672 x 672, one grid, no padding crops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TOLERANCE
from PIL import Image

from vlm2vec_hf.modeling_vlm2vec.image_processing_phi3_v import CLIP_MEAN, CLIP_STD, Phi3VImageProcessor, hd_transform
from vlm2vec_hf.modeling_vlm2vec.modeling_phi3_v import Phi3VImageEmbedding
from vlm2vec_hf.tiny import backbone_config


def noise_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)


# HD sizes with num_crops 4: 672x672 (5 crops), 336x1344 and 1344x336 (5), 336x672 (3 of 5: two zero crops).
IMAGES = [
    noise_image(150, 100, seed=1),
    noise_image(1000, 90, seed=2),
    noise_image(120, 80, "RGBA", seed=3),
    noise_image(90, 1000, "L", seed=4),
    noise_image(2000, 700, seed=5),
    noise_image(700, 2000, seed=6),
    noise_image(2000, 700, seed=7),
]


def reference_pixels(image: Image.Image, num_crops: int) -> tuple[torch.Tensor, list[int]]:
    """The reference `Phi3VImageProcessor.preprocess` for one image (torchvision ToTensor + Normalize)."""
    hd = hd_transform(image.convert("RGB"), num_crops)
    tensor = torch.from_numpy(np.array(hd)).permute(2, 0, 1).float().div(255)
    tensor = (tensor - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    height, width = tensor.shape[1:]
    global_view = F.interpolate(tensor[None], size=(336, 336), mode="bicubic")
    crops = (
        tensor.reshape(1, 3, height // 336, 336, width // 336, 336).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, 336, 336)
    )
    stacked = torch.cat([global_view, crops])
    return torch.cat([stacked, stacked.new_zeros(num_crops + 1 - len(stacked), 3, 336, 336)]), [height, width]


@pytest.mark.parametrize("num_crops", [4, 9])
def test_batched_processor_equals_the_reference_image_by_image(num_crops):
    batch = Phi3VImageProcessor()(IMAGES, num_crops=num_crops)
    for index, image in enumerate(IMAGES):
        pixels, size = reference_pixels(image, num_crops)
        assert batch["image_sizes"][index].tolist() == size, index
        assert torch.equal(batch["pixel_values"][index], pixels), index
    assert len({tuple(size) for size in batch["image_sizes"].tolist()}) >= 3  # several crop grids in one batch


def reference_image_tokens(embedding: Phi3VImageEmbedding, pixel_values, image_sizes) -> torch.Tensor:
    """The reference `Phi3ImageEmbedding`: the whole CLIP tower over every crop (zero crops included),
    `hidden_states[-2]`, then image by image the 2 x 2 merge, separators and projection."""
    images, crops = pixel_values.shape[:2]
    states = embedding.img_processor(pixel_values.flatten(0, 1), output_hidden_states=True).hidden_states[-2]
    features = states[:, 1:].reshape(images, crops, 576, -1)
    outputs = []
    for index in range(images):
        h_crop, w_crop = (image_sizes[index] // 336).tolist()
        sub = embedding.add_row_separators(
            embedding.merge_2x2(features[index, 1 : 1 + h_crop * w_crop], h_crop, w_crop)
        )
        global_view = embedding.add_row_separators(embedding.merge_2x2(features[index, :1], 1, 1))
        outputs.append(embedding.img_projection(torch.cat([sub[0], embedding.glb_GN[0], global_view[0]])))
    return torch.cat(outputs)


def test_image_embedding_of_mixed_crop_grids_equals_the_reference():
    """Crops of every image in one CLIP batch, grouped by crop grid, without the zero crops and without the CLIP
    layers after `hidden_states[-2]`: the same image tokens, in the images' order."""
    torch.manual_seed(0)
    config = backbone_config("tiny", "phi3_v")
    config.vision_config._attn_implementation = "eager"
    embedding = Phi3VImageEmbedding(config).eval()
    with torch.no_grad():
        for parameter in embedding.parameters():
            parameter.normal_(0, 0.2)
    inputs = Phi3VImageProcessor()(IMAGES)
    used_crops = sum(1 + (h // 336) * (w // 336) for h, w in inputs["image_sizes"].tolist())
    assert used_crops < inputs["pixel_values"].shape[0] * inputs["pixel_values"].shape[1]

    batch_rows = []
    layers = embedding.img_processor.encoder.layers
    first = layers[0].register_forward_hook(lambda module, args, output: batch_rows.append(len(args[0])))
    last = layers[-1].register_forward_hook(lambda module, args, output: batch_rows.append("last layer ran"))
    try:
        with torch.no_grad():
            tokens = embedding(inputs["pixel_values"], inputs["image_sizes"])
    finally:
        first.remove()
        last.remove()
    assert batch_rows == [used_crops]  # one CLIP batch of the used crops; the unused last layer never runs
    with torch.no_grad():
        expected = reference_image_tokens(embedding, inputs["pixel_values"], inputs["image_sizes"])
    assert tokens.shape == expected.shape == (sum(inputs["num_img_tokens"]), config.text_config.hidden_size)
    assert (tokens - expected).abs().max().item() < TOLERANCE

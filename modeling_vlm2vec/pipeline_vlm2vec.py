"""`pipeline("image-feature-extraction", model=folder, trust_remote_code=True)` for a VLM2Vec model (the
configuration's `custom_pipelines` names this class).

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `torch` and
`transformers`.
"""

from __future__ import annotations

import torch
from transformers.image_utils import load_image
from transformers.pipelines import ImageFeatureExtractionPipeline


class VLM2VecImageFeatureExtractionPipeline(ImageFeatureExtractionPipeline):
    """`pipeline("image-feature-extraction", model=folder, trust_remote_code=True)` for a VLM2Vec model.

    Each image is embedded alone, exactly as `SentenceTransformer.encode(image)` embeds it: the image-alone
    prompt and the image preparation of the repository's [`VLM2VecProcessor`]. Returns the L2-normalised
    embedding, `(1, hidden_size)` per image (a list, or a tensor with `return_tensors=True`).
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False

    def preprocess(self, image, timeout=None, **image_processor_kwargs) -> dict[str, torch.Tensor]:
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            image = load_image(image, timeout=timeout)
        return self.processor(images=[image], **image_processor_kwargs)

    def postprocess(self, model_outputs, pool=None, return_tensors=False):
        embeddings = model_outputs["embeddings"]
        return embeddings if return_tensors else embeddings.tolist()


__all__ = ["VLM2VecImageFeatureExtractionPipeline"]

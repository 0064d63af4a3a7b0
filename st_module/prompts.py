"""MMEB task instructions, usable by name: `model.encode(inputs, prompt_name="ImageNet-1K")`.

Each value is the instruction alone (no image tag, no trailing space); `VLM2VecProcessor.format_prompt` places it
the way the reference does. The 20 MMEB-train subsets' query instructions are `INSTRUCTION_DICT[subset][0]` of the
reference (`v1:archive/instruction_dict.py`, REFERENCE.md section 2.6). The out-of-distribution datasets' instructions
(Place365 ... Visual7W-Pointing without MMEB-train data) are the MMEB-eval `qry_text` wording as we know it, not
checked against the parquet files offline; evaluation always uses the strings stored in the data. Image candidates
use the target instruction `"Represent the given image."`.
"""

from __future__ import annotations

QA_INSTRUCTION = "Represent the given image with the following question:"
IMAGE_TARGET_INSTRUCTION = "Represent the given image."

MMEB_INSTRUCTIONS: dict[str, str] = {
    # Classification
    "ImageNet-1K": "Represent the given image for classification.",
    "N24News": "Represent the given news image with the following caption for domain classification:",
    "HatefulMemes": (
        "Represent the given image for binary classification to determine whether it constitutes hateful speech or not."
    ),
    "VOC2007": "Identify the object shown in the image",
    "SUN397": "Identify the scene shown in the image.",
    "Place365": "Identify the scene shown in the image.",
    "ImageNet-A": "Represent the given image for classification.",
    "ImageNet-R": "Represent the given image for classification.",
    "ObjectNet": "Identify the object shown in the image.",
    "Country211": "Identify the country depicted in the image.",
    # Visual question answering
    "OK-VQA": QA_INSTRUCTION,
    "A-OKVQA": QA_INSTRUCTION,
    "DocVQA": QA_INSTRUCTION,
    "InfographicsVQA": QA_INSTRUCTION,
    "ChartQA": QA_INSTRUCTION,
    "Visual7W": QA_INSTRUCTION,
    "ScienceQA": QA_INSTRUCTION,
    "VizWiz": QA_INSTRUCTION,
    "GQA": QA_INSTRUCTION,
    "TextVQA": QA_INSTRUCTION,
    # Retrieval
    "VisDial": "Represent the given dialogue about an image, which is used for image retrieval:",
    "CIRR": "Given an image, find a similar everyday image with the described changes:",
    "VisualNews_t2i": "Retrieve an image of this news caption.",
    "VisualNews_i2t": "Find a caption for the news in the given photo.",
    "MSCOCO_t2i": "Find me an everyday image that matches the given caption:",
    "MSCOCO_i2t": "Find an image caption describing the given everyday image.",
    "NIGHTS": "Find a day-to-day image that looks similar to the provided image.",
    "WebQA": "Find a Wikipedia image that answers this question:",
    "FashionIQ": "Find an image to match the fashion image and style note:",
    "Wiki-SS-NQ": "Find the document screenshot that can answer the given query:",
    "OVEN": "Retrieve a Wikipedia image-description pair that provides evidence for the question of this image:",
    "EDIS": "Find a news image that matches the provided caption:",
    # Visual grounding
    "MSCOCO": "Select the portion of the image that isolates the object labeled as",
    "RefCOCO": "Select the portion of the image that follows the language expressions.",
    "RefCOCO-Matching": "Select the portion of the image that follows the language expressions:",
    "Visual7W-Pointing": "Select the portion of the image that answers the question:",
}


def default_prompts() -> dict[str, str]:
    """The prompts saved with every model: `query` / `document` (empty: raw input) plus every MMEB instruction
    and the image-target instruction under `"image_target"`."""
    return {"query": "", "document": "", "image_target": IMAGE_TARGET_INSTRUCTION, **MMEB_INSTRUCTIONS}

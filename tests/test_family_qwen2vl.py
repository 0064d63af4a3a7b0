"""Qwen2-VL (image fixture `parity-qwen2vl-public`) checks beyond the shared parity suite (test_family_parity.py):
instructions grouped into one `encode` call per instruction, MMEB instructions by prompt name, and
`encode_query` / `encode_document`."""

from __future__ import annotations

import pytest
import torch
from helpers import QWEN2VL, TOLERANCE, V1_STRUCTURED, max_abs, structured_input


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_one_encode_call_per_instruction_equals_reference(sentence_model, expected, padding_side):
    # Several instructions cannot share one encode call, so batch the cases that share one.
    groups: dict[str | None, list[str]] = {}
    for case_id, (instruction, _, _) in V1_STRUCTURED.items():
        groups.setdefault(instruction, []).append(case_id)
    groups[None] += ["p06"]  # the same image case twice in one batch, once with and once without instruction
    sentence_model[0].padding_side = padding_side
    try:
        for instruction, case_ids in groups.items():
            inputs = [structured_input(case, *V1_STRUCTURED[case][1:]) for case in case_ids]
            embeddings = sentence_model.encode(inputs, prompt=instruction, batch_size=len(inputs))
            for case_id, embedding in zip(case_ids, embeddings):
                if instruction is None and case_id == "p06":
                    reference = sentence_model.encode({"image": QWEN2VL.image("p06")})
                    assert max_abs(embedding, torch.as_tensor(reference)) < TOLERANCE
                    continue
                assert max_abs(embedding, expected[f"case/{case_id}"]) < TOLERANCE, case_id
    finally:
        sentence_model[0].padding_side = None


def test_mmeb_instruction_by_name_and_encode_query(sentence_model, expected):
    # MSCOCO_t2i's instruction (case p05's query), saved under mteb's task name.
    by_name = sentence_model.encode("a red bus.", prompt_name="MSCOCOT2IRetrieval-query")
    assert max_abs(by_name, expected["case/p05"]) < TOLERANCE
    # encode_query / encode_document use the (empty) "query" / "document" prompts: raw strings, like the reference.
    assert max_abs(sentence_model.encode_query("A cat and a dog"), expected["case/p03"]) < TOLERANCE
    assert max_abs(sentence_model.encode_document("A cat and a tiger"), expected["case/p04"]) < TOLERANCE

"""The int8 precision option: validated at the model door, close to fp32, CPU only."""

import pytest
import torch

from convis.clip.models import PRECISIONS, load_model


def test_int8_image_embeddings_stay_close_to_fp32_and_text_is_untouched():
    fp32 = load_model("test-tiny", device="cpu", precision="fp32")
    int8 = load_model("test-tiny", device="cpu", precision="int8")
    assert int8 is not fp32 and int8.precision == "int8" and int8.dtype == torch.float32
    quantised = [type(m).__module__ for m in int8.model.visual.modules()]
    assert any("quantized" in name for name in quantised)  # the Linear layers really were swapped
    assert not any("quantized" in type(m).__module__ for m in fp32.model.visual.modules())
    x = torch.randn(8, 3, fp32.image_size, fp32.image_size, generator=torch.Generator().manual_seed(0))
    a, b = fp32.encode_image(x), int8.encode_image(x)
    cos = (a * b).sum(-1)
    assert cos.min() > 0.99 and not torch.equal(a, b)
    tokens = fp32.tokenizer(["a dog", "a red square"])
    assert torch.equal(fp32.encode_text(tokens), int8.encode_text(tokens))  # same bank for both
    assert int8.model_id == fp32.model_id


def test_unknown_or_misplaced_precision_names_the_fix():
    assert "int8" in PRECISIONS
    with pytest.raises(ValueError, match="int8"):
        load_model("test-tiny", device="cpu", precision="int4")
    with pytest.raises(ValueError, match="CPU only"):
        load_model("test-tiny", device="meta", precision="int8")


def test_encoder_flop_count_matches_a_hand_count_for_vit_b_32():
    from convis.bench.progressive import encoder_gflop_per_image

    # By hand, in multiply-adds: per layer 50 tokens x (4 x 768² attention projections + 2 x 768 x 3072
    # MLP) + 2 x 50² x 768 attention products; 12 layers; patch embedding 49 x 3,072 x 768; projection.
    macs = 12 * (50 * (4 * 768**2 + 2 * 768 * 3072) + 2 * 50**2 * 768) + 49 * 3072 * 768 + 768 * 512
    clip = load_model("ViT-B-32", "none", device="cpu", precision="fp32")
    assert abs(encoder_gflop_per_image(clip) - 2 * macs / 1e9) / (2 * macs / 1e9) < 0.02

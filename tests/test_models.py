"""convis.clip.models: tiny seeded models, checkpoint loading, QuickGELU choice, fast offline errors."""


import numpy as np
import pytest
import torch

from convis.clip import hub as _hub

from convis.clip import models
from convis.clip.models import DEFAULT_PRETRAINED, ModelLoadError, list_models, load_model, parse_model


def _probe(clip):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, clip.image_size, clip.image_size, generator=g)
    return clip.encode_image(x), clip.encode_text(clip.tokenizer(["a dog", "a small domestic cat"]))


def test_tiny_shapes_and_fields(tiny_clip):
    img, txt = _probe(tiny_clip)
    assert img.shape == (2, 32) and txt.shape == (2, 32)
    assert img.dtype == txt.dtype == torch.float32
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(2))
    assert (tiny_clip.image_size, tiny_clip.context_length) == (64, 77)
    assert tiny_clip.device == torch.device("cpu") and tiny_clip.dtype == torch.float32
    assert len(tiny_clip.mean) == len(tiny_clip.std) == 3
    assert tiny_clip.model_id == "test-tiny/none" and tiny_clip.pretrained == "none"
    assert not tiny_clip.model.training


def test_encode_image_moves_and_casts_input(tiny_clip):
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    assert tiny_clip.encode_image(x).dtype == torch.float32


def test_cached_in_process_and_seeded_across_loads(tiny_clip):
    assert load_model("test-tiny", device="cpu") is tiny_clip
    assert load_model("test-tiny/none", device="cpu") is tiny_clip
    models._load.cache_clear()  # a fresh build must give the same random weights
    again = load_model("test-tiny", pretrained=None, device="cpu")
    assert again is not tiny_clip and again.model_id == tiny_clip.model_id
    for a, b in zip(_probe(tiny_clip), _probe(again)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_device_and_precision_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models._resolve_device("auto") == torch.device("cpu")
    assert models._resolve_device("cpu") == torch.device("cpu")
    assert models._resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert models._resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert models._resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="fp32"):
        models._resolve_precision("fp64", torch.device("cpu"))
    clip = load_model("test-tiny", device="auto", precision="auto")
    assert clip.device == torch.device("cpu") and clip.dtype == torch.float32


def test_bf16_on_cpu_still_returns_float32_unit_rows():
    clip = load_model("test-tiny", device="cpu", precision="bf16")
    assert clip.dtype == torch.bfloat16
    img, txt = _probe(clip)
    assert img.dtype == torch.float32
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoint_round_trip(tiny_clip, tmp_path, suffix):
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)
    loaded = load_model("test-tiny", pretrained=str(path), device="cpu")
    assert loaded.pretrained == str(path.resolve())
    assert loaded.model_id.startswith(f"test-tiny/tiny{suffix}-")
    for a, b in zip(_probe(tiny_clip), _probe(loaded)):
        torch.testing.assert_close(a, b)


def test_model_id_follows_file_contents(tiny_clip, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    state = {k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()}
    save_file(state, path)
    first = load_model("test-tiny", pretrained=str(path), device="cpu").model_id
    state["logit_scale"] = state["logit_scale"] + 1
    save_file(state, path)
    assert load_model("test-tiny", pretrained=str(path), device="cpu").model_id != first


def test_quickgelu_decision():
    assert models._resolve_arch("ViT-B-32", "openai") == ("ViT-B-32", {"force_quick_gelu": True})
    assert models._resolve_arch("ViT-L-14", "openai")[1] == {"force_quick_gelu": True}
    assert models._resolve_arch("ViT-B-32", "laion400m_e31")[1] == {"force_quick_gelu": True}  # tag cfg flag
    assert models._resolve_arch("ViT-B-32", "laion2b_s34b_b79k")[1] == {}
    assert models._resolve_arch("ViT-B-32-quickgelu", "openai")[1] == {}  # already QuickGELU
    assert models._resolve_arch("ViT-B-32", "none")[1] == {}


def test_registry_and_parse():
    names = list_models()
    assert names[0] == "ViT-B-32/openai" and "test-tiny/none" in names
    assert set(names) == set(models.MODELS)
    assert parse_model("ViT-B-16/laion2b_s34b_b88k") == ("ViT-B-16", "laion2b_s34b_b88k")
    assert parse_model("ViT-B-32") == ("ViT-B-32", "openai")
    assert parse_model("test-tiny") == ("test-tiny", "none")
    assert parse_model("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == (
        "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)
    assert "synthetic-shapes" not in list_models()  # the core ships no evaluation model


def test_registered_model_loads_by_its_bare_name(monkeypatch):
    """What `convis.eval` does for synthetic-shapes: weights and config registered from outside."""
    import convis.eval

    assert DEFAULT_PRETRAINED["synthetic-shapes"] == str(convis.eval.ASSETS / "synthetic-shapes.safetensors")
    assert parse_model("synthetic-shapes") == ("synthetic-shapes", DEFAULT_PRETRAINED["synthetic-shapes"])
    clip = load_model("synthetic-shapes", device="cpu")
    assert clip.image_size == 64 and clip.model_id.startswith("synthetic-shapes/synthetic-shapes.safetensors-")


def test_unknown_model_did_you_mean():
    with pytest.raises(ValueError, match=r"unknown model 'ViT-B-33'; did you mean 'ViT-B-32'\?"):
        load_model("ViT-B-33", device="cpu")


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ValueError, match="valid tags: openai.*laion2b_s34b_b79k"):
        load_model("ViT-B-32", "openaii", device="cpu")


def test_missing_local_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_model("test-tiny", pretrained=str(missing), device="cpu")


def test_missing_default_weights(monkeypatch, tmp_path):
    # stands in for synthetic-shapes, whose default is a file in convis/eval/assets/
    monkeypatch.setitem(DEFAULT_PRETRAINED, "test-tiny", str(tmp_path / "gone.safetensors"))
    with pytest.raises(FileNotFoundError, match="gone.safetensors.*default weights"):
        load_model("test-tiny", device="cpu")


@pytest.mark.parametrize("name,tag", [("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k"),
                                      ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)])
def test_hub_weights_offline_fail_fast(name, tag, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):  # fail fast = before any download or network probe
        raise AssertionError("the network was tried")

    monkeypatch.setattr(_hub, "reachable", no_network)
    monkeypatch.setattr(_hub.open_clip(), "create_model", no_network)
    with pytest.raises(ModelLoadError, match="--pretrained") as info:
        load_model(name, tag, device="cpu")
    assert "test-tiny" in str(info.value) and "huggingface" in str(info.value)


def test_convis_offline_is_the_same_offline_for_weights(monkeypatch, tmp_path):
    """CONVIS_OFFLINE means offline for WordNet and for weights alike (one definition)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("CONVIS_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the network was probed although CONVIS_OFFLINE=1")

    monkeypatch.setattr(_hub, "reachable", no_network)
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model("ViT-B-32", "laion2b_s34b_b79k", device="cpu")


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(_hub, "reachable", lambda host, timeout=3.0: False)
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model("ViT-B-32", "laion2b_s34b_b79k", device="cpu")


def test_cached_hub_weights_load_without_network(tiny_clip, monkeypatch, tmp_path):
    """A tag whose file sits in the HF cache loads with no network probe and no hub round trip."""
    from huggingface_hub import constants
    from open_clip import pretrained as oc_pretrained
    from safetensors.torch import save_file

    snap = tmp_path / "models--convis--tiny-fake" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (tmp_path / "models--convis--tiny-fake" / "refs").mkdir()
    (tmp_path / "models--convis--tiny-fake" / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()},
              snap / "open_clip_model.safetensors")
    monkeypatch.setitem(oc_pretrained._PRETRAINED, "test-tiny",
                        {"fake": oc_pretrained._pcfg(hf_hub="convis/tiny-fake/")})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise AssertionError("probed the network for cached weights")

    monkeypatch.setattr(_hub, "reachable", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    clip = load_model("test-tiny", "fake", device="cpu")
    assert clip.model_id == "test-tiny/fake"
    assert constants.HF_HUB_OFFLINE is False  # restored after the load
    for a, b in zip(_probe(tiny_clip), _probe(clip)):
        torch.testing.assert_close(a, b)


def test_clip_carries_open_clip_preprocessing(tiny_clip):
    """The model door hands out open_clip's own inference transform (bench and OOD use it)."""
    import open_clip
    from PIL import Image

    _, _, reference = open_clip.create_model_and_transforms("test-tiny")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8))
    x = tiny_clip.preprocess(image)
    assert x.shape == (3, tiny_clip.image_size, tiny_clip.image_size)
    assert torch.equal(x, reference(image))

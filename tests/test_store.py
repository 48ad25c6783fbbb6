"""The dataset store and the local engine, on real files: resume, dedup, rescore, refusals, maps."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

import convis.eval  # noqa: F401  (registers the synthetic-shapes model and vocabulary)
from convis.config import GridConfig
from convis.dataset.local import index_dataset, rescore
from convis.dataset.manifest import Item, read_manifest
from convis.dataset.worker import IndexWorker
from convis.engine import Engine
from convis.eval.shapes import benchmark_scenes
from convis.store import Store, StoreError, StoreSpec
from convis.store import search as ss

SCORE = "top1"


class Counting(torch.nn.Module):
    """Wraps a CLIP module and counts the image rows it is asked to encode."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.rows = model, 0

    def encode_image(self, x):
        self.rows += x.shape[0]
        return self.inner.encode_image(x)

    def encode_text(self, t):
        return self.inner.encode_text(t)


def counting(engine: Engine) -> tuple[Engine, Counting]:
    model = Counting(engine.clip.model)
    return Engine(dataclasses.replace(engine.clip, model=model), engine.hierarchy, engine.bank), model


@pytest.fixture(scope="module")
def engine():
    return Engine.load("test-tiny", None, "synthetic-shapes", device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """~20 files: 12 scenes, a duplicate, a broken file, RGBA, CMYK, 16-bit, a 5:1 panorama."""
    root = tmp_path_factory.mktemp("data")
    (root / "sub").mkdir()
    scenes = benchmark_scenes(12, seed=3)
    for i, s in enumerate(scenes):
        s.pil().save(root / ("sub" if i % 2 else ".") / f"scene{i:02d}.png")
    (root / "sub" / "copy-of-scene00.png").write_bytes((root / "scene00.png").read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 4), dtype=np.uint8), "RGBA").save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (80, 96), dtype=np.uint16)).save(root / "deep16.png")
    Image.fromarray(rng.integers(0, 256, (60, 300, 3), dtype=np.uint8)).save(root / "panorama.png")
    return root


def spec_for(engine: Engine, config: GridConfig, dtype: str = "float16") -> StoreSpec:
    return StoreSpec.make(engine.clip.model_id, engine.clip.precision, config, engine.bank.embeddings.shape[1], dtype)


def run(engine, items, root, config=GridConfig(), per_shard=4, dtype="float16"):
    store = Store.create(root, spec_for(engine, config, dtype))
    with store.writer():
        summary = index_dataset(items, store, IndexWorker(engine, config, 256, SCORE, dtype), SCORE, per_shard)
    return Store.open(root), summary


def test_manifest_folder_and_lists(data, tmp_path):
    found = read_manifest(data)
    assert len(found) == 18 and any(i.path.endswith("sub/scene01.png") for i in found)
    (tmp_path / "list.csv").write_text(f"path,label\n{data}/scene00.png,circle\nrel.png\n")
    assert read_manifest(tmp_path / "list.csv") == [Item(f"{data}/scene00.png", "circle"), Item(str(tmp_path / "rel.png"))]
    with pytest.raises(StoreError.__mro__[1]):  # UserError
        read_manifest(tmp_path / "nope")


class CrashingWorker(IndexWorker):
    """Raises on its `crash_at`-th batch, as a killed process would stop there."""

    def __init__(self, *args, crash_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.crash_at = 0, crash_at

    def __call__(self, batch, progress=None):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("injected crash")
        return super().__call__(batch, progress)


def test_index_counts_resume_and_append(engine, data, tmp_path):
    items = read_manifest(data)
    counted, model = counting(engine)
    store = Store.create(tmp_path / "s", spec_for(engine, GridConfig()))
    with pytest.raises(RuntimeError, match="injected"), store.writer():
        index_dataset(items, store, CrashingWorker(counted, GridConfig(), 256, SCORE, crash_at=3), SCORE, 4)
    after_crash = Store.open(tmp_path / "s")
    assert len(after_crash) == 8  # two shards of 4 survived, readable
    windows = 730 + 1  # every image: its windows and one whole-image crop
    assert model.rows == 8 * windows  # the third batch raised before its forward
    model.rows = 0
    store, summary = run(counted, items, tmp_path / "s")
    unique_ok = 12 + 4  # scenes + rgba, cmyk, 16-bit, panorama (the copy is a duplicate)
    # the copy of scene00 (stored before the crash) now counts as already in the store
    assert (summary.indexed, summary.already, summary.duplicates, len(summary.failed)) == (unique_ok - 8, 9, 0, 1)
    assert summary.failed[0][0].endswith("broken.jpg") and "broken.jpg" in summary.failed[0][1]
    assert model.rows == (unique_ok - 8) * windows and len(store) == unique_ok
    # appending 2 new files costs 2 images' forwards
    extra = benchmark_scenes(2, seed=99)
    for i, s in enumerate(extra):
        s.pil().save(data.parent / f"extra{i}.png")
    model.rows = 0
    store, summary = run(counted, items + [Item(str(data.parent / f"extra{i}.png")) for i in range(2)], tmp_path / "s")
    assert summary.indexed == 2 and summary.already == unique_ok + 1 and model.rows == 2 * windows


def test_whole_mode_panorama_does_not_stop_the_run(engine, data, tmp_path):
    store, summary = run(engine, [Item(str(data / "panorama.png")), Item(str(data / "scene00.png"))], tmp_path / "w",
                         GridConfig(whole=True))
    assert summary.indexed + len(summary.failed) == 2 and summary.indexed >= 1
    for path, why in summary.failed:  # a refused panorama says which file and why
        assert path.endswith("panorama.png") and "4:1" in why


def test_refusals_other_model_grid_and_second_writer(engine, data, tmp_path):
    counted, model = counting(engine)
    _, summary = run(counted, [Item(str(data / "scene00.png")), Item(str(data / "sub" / "copy-of-scene00.png"))],
                     tmp_path / "r")
    assert (summary.indexed, summary.duplicates, model.rows) == (1, 1, 731)  # a duplicate is encoded once
    other = dataclasses.replace(spec_for(engine, GridConfig()), model_id="ViT-B-32/openai", dim=512)
    with pytest.raises(StoreError, match=r"model_id: 'test-tiny.*' vs 'ViT-B-32/openai'.*dim: 32 vs 512"):
        Store.create(tmp_path / "r", other)
    with pytest.raises(StoreError, match=r"grid.seed: 0 vs 7"):
        Store.create(tmp_path / "r", spec_for(engine, GridConfig(seed=7)))
    store = Store.open(tmp_path / "r")
    with store.writer(), pytest.raises(StoreError, match="another process .* is writing"):
        with Store.open(tmp_path / "r").writer():
            pass
    with Store.open(tmp_path / "r").writer():  # released after the first one left
        pass


def test_rescore_adds_a_concept_set_without_a_forward(engine, data, tmp_path):
    items = [Item(str(data / f"scene{i:02d}.png")) for i in (0, 2, 4)]
    store, _ = run(engine, items, tmp_path / "x")
    h = engine.hierarchy
    sub = convis_toy_subset(h)
    other = Engine(engine.clip, sub, dataclasses.replace(engine.bank, embeddings=engine.bank.embeddings[
        torch.as_tensor([h.index(n) for n in sub.ids])], vocabulary=sub.vocabulary))
    counted, model = counting(other)
    with store.writer():
        assert rescore(store, IndexWorker(counted, store.spec.grid_config(), 256, SCORE), SCORE) == 3
    assert model.rows == 0
    hits = ss.search_concept(Store.open(tmp_path / "x"), sub, sub.ids[0], k=3)
    assert len(hits) == 3 and {x.path for x in hits} == {i.path for i in items}
    with store.writer():  # nothing left to score
        assert rescore(store, IndexWorker(counted, store.spec.grid_config(), 256, SCORE), SCORE) == 0


def convis_toy_subset(h):
    from convis.concepts.hierarchy import toy_hierarchy

    names = ["circle.n.01", "ellipse.n.01", "square.n.01"]
    return toy_hierarchy({n: [] for n in names}, vocabulary="three-shapes")


def test_worker_feeds_whole_images_per_forward_and_rebuilds_from_its_recipe(engine, data):
    from convis.dataset.prepare import decode, hash_item
    from convis.dataset.worker import WorkerRecipe, autocast_dtype

    plain = IndexWorker(engine, GridConfig(), 1000, SCORE, "float32")
    assert plain.bounds(np.array([0, 730, 1460, 2190])) == [0, 1000, 2000, 2190]  # windows across images
    fed = IndexWorker(engine, GridConfig(), 1000, SCORE, "float32", images_per_forward=2)
    assert fed.bounds(np.array([0, 730, 1460, 2190])) == [0, 1460, 2190]  # two whole images, then one
    assert fed.bounds(np.array([0, 730, 1500, 2000])) == [0, 1500, 2000]  # images of unequal window counts
    batch = [decode(Item(str(data / f"scene{i:02d}.png")), *hash_item(Item(str(data / f"scene{i:02d}.png"))),
                    GridConfig()) for i in (0, 2, 4)]
    counted, model = counting(engine)
    a = IndexWorker(counted, GridConfig(), 1000, SCORE, "float32", images_per_forward=2)(batch)
    assert model.rows == 3 * 731
    b = WorkerRecipe.of(plain)("cpu")(batch)  # rebuilt as a Ray actor would: model by name, bank shipped
    assert [r.sha256 for r in a.rows] == [r.sha256 for r in b.rows] == [p.sha256 for p in batch]
    assert a.window_emb.shape == (3 * 730, 32) and torch.allclose(a.window_emb, b.window_emb, atol=1e-6)
    assert torch.allclose(a.image_emb, b.image_emb, atol=1e-6) and np.array_equal(a.scores, b.scores)
    assert autocast_dtype(torch.device("cpu"), "fp16") is None  # CPU autocast is slower: off
    assert autocast_dtype(torch.device("cuda"), "fp16") == torch.float16
    assert autocast_dtype(torch.device("cuda"), "bf16") == torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), "fp32") is None

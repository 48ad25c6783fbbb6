"""The Ray engine on a real single-node cluster: the local engine's store, resume after a crash, no Ray.

`local_mode` is gone from Ray, so these start a real cluster (2 CPUs, one CPU actor) once per
module. The actors import this module by name (for the counting recipe), hence tests/ on their
PYTHONPATH.
"""

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

import convis.eval  # noqa: F401  (registers the synthetic-shapes vocabulary)
from convis.cli.commands import main
from convis.config import GridConfig
from convis.dataset.local import index_dataset
from convis.dataset.manifest import read_manifest
from convis.dataset.worker import IndexWorker, WorkerRecipe
from convis.engine import Engine
from convis.errors import UserError
from convis.eval.shapes import benchmark_scenes
from convis.store import Store, StoreSpec
from convis.store import search as ss
from convis.store.shards import read_image_emb

ray = pytest.importorskip("ray")
from convis.dataset import ray_engine  # noqa: E402  (after the skip: it is only tried with Ray at hand)

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
SCORE = "top1"
WINDOWS = 730 + 1  # per image: its windows and one whole-image crop


@pytest.fixture(scope="module")
def cluster():
    """One real single-node cluster for the module; workers import this checkout's convis and tests."""
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, object_store_memory=256 * 2**20,
             runtime_env={"env_vars": {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "HF_HUB_OFFLINE": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def engine():
    return Engine.load("test-tiny", None, "synthetic-shapes", device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """11 files: 8 scenes, an exact copy of one, two broken files (8 images to store).

    Listed in name order, the broken two come first: in shards of 2 they make a shard of failures only.
    """
    root = tmp_path_factory.mktemp("data")
    for i, s in enumerate(benchmark_scenes(8, seed=5)):
        s.pil().save(root / f"scene{i}.png")
    (root / "copy.png").write_bytes((root / "scene0.png").read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return read_manifest(root)


def worker(engine: Engine) -> IndexWorker:
    # one image per forward: both engines then run the same forward shapes whatever a shard holds
    return IndexWorker(engine, GridConfig(), 256, SCORE, "float32", images_per_forward=1)


def new_store(engine: Engine, root: Path) -> Store:
    spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, GridConfig(), engine.bank.embeddings.shape[1],
                          "float32")
    return Store.create(root, spec)


class CountingModel(torch.nn.Module):
    """A CLIP module that appends the number of image rows it encodes to a file (the actor is another process)."""

    def __init__(self, model, log: str):
        super().__init__()
        self.inner, self.log = model, log

    def encode_image(self, x):
        with open(self.log, "a") as f:
            f.write(f"{x.shape[0]}\n")
        return self.inner.encode_image(x)


class CrashingWorker(IndexWorker):
    def __call__(self, batch, progress=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.crash_at:
            # die once the driver has written a shard (the test wants one kept), as a process dying
            # mid-run would; bounded, so a broken driver fails rather than hangs. Ray hands a call's
            # output over when the actor's next call ends, so the call before this one is lost.
            deadline = time.monotonic() + 60
            while len(list(Path(self.shards).glob("part-*"))) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            raise RuntimeError("injected crash")
        return super().__call__(batch, progress)


@dataclass(frozen=True)
class CountingRecipe:
    """Builds the actor's worker like `WorkerRecipe`, then counts its encoder rows and raises on call `crash_at`."""

    recipe: WorkerRecipe
    log: str
    crash_at: int = 0
    shards: str = ""  # the store's shards folder, watched before crashing

    def __call__(self, device: str) -> IndexWorker:
        w = self.recipe(device)
        clip = replace(w.engine.clip, model=CountingModel(w.engine.clip.model, self.log))
        out = CrashingWorker(Engine(clip, w.engine.hierarchy, w.engine.bank), w.config, w.batch_size, w.score_name,
                             "float32", w.images_per_forward)
        out.crash_at, out.shards = self.crash_at, self.shards
        return out


def image_embeddings(store: Store) -> dict[str, torch.Tensor]:
    """sha256 -> the stored whole-image embedding, shard by shard."""
    out = {}
    for name, rows in store.shards().items():
        emb = read_image_emb(store.root / "shards" / name)
        out.update({r.sha256: emb[pos] for pos, r in enumerate(rows)})
    return out


def rows_logged(log: Path) -> int:
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


def test_ray_store_equals_the_local_store(cluster, engine, data, tmp_path):
    local, far = new_store(engine, tmp_path / "local"), new_store(engine, tmp_path / "ray")
    with local.writer():
        a = index_dataset(data, local, worker(engine), SCORE, 3)
    seen = []
    with far.writer():
        b = ray_engine.index_with_ray(data, far, worker(engine), SCORE, 3, progress=lambda d, t: seen.append((d, t)))
    assert (b.indexed, b.duplicates, b.already) == (a.indexed, a.duplicates, a.already) == (8, 1, 0)
    assert sorted(b.failed) == sorted(a.failed) and [Path(p).name for p, _ in a.failed] == ["bad.png", "broken.jpg"]
    assert seen[0] == (1, 11)  # the copy is skipped on the driver; the broken two fail in a task
    assert seen[-1] == (11, 11) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    local, far = Store.open(tmp_path / "local"), Store.open(tmp_path / "ray")
    assert {r.sha256 for r in local.rows()} == {r.sha256 for r in far.rows()} and len(far) == 8
    for r in local.rows():
        assert far.row(r.sha256) == r  # path, size, crop, grid, windows, label
        assert torch.allclose(far.windows(r.sha256), local.windows(r.sha256), rtol=0, atol=1e-6)
    a_img, b_img = image_embeddings(local), image_embeddings(far)
    assert a_img.keys() == b_img.keys() and all(torch.allclose(a_img[k], b_img[k], rtol=0, atol=1e-6) for k in a_img)
    h = engine.hierarchy
    for concept in h.ids[:5]:
        hits = [sorted((-x.score, x.sha256) for x in ss.search_concept(st, h, concept, k=8)) for st in (local, far)]
        assert hits[0] == hits[1] and len(hits[0]) == 8
    text = engine.encode_text("a red circle")
    assert [(x.sha256, round(x.score, 5)) for x in ss.search_text(local, text, engine.bank.embeddings, 8)] == \
           [(x.sha256, round(x.score, 5)) for x in ss.search_text(far, text, engine.bank.embeddings, 8)]


def test_a_crashed_run_keeps_its_shards_and_the_rerun_encodes_only_the_rest(cluster, engine, data, tmp_path):
    """In shards of 2: [bad.png, broken.jpg] (failures only), then scenes; the actor raises on its third encode."""
    store, first, second = new_store(engine, tmp_path / "s"), tmp_path / "first.log", tmp_path / "second.log"
    crashing = CountingRecipe(WorkerRecipe.of(worker(engine)), str(first), crash_at=3, shards=str(tmp_path / "s" / "shards"))
    with pytest.raises(UserError, match=r"Ray run stopped .*injected crash.* run the same command again"), store.writer():
        ray_engine.index_with_ray(data, store, worker(engine), SCORE, 2, recipe=crashing)
    kept = len(Store.open(tmp_path / "s"))
    assert 1 <= kept < 8  # what the driver wrote before the crash stays, readable
    assert rows_logged(first) >= kept * WINDOWS  # (the last finished call's shard may be lost with the actor)
    store = Store.open(tmp_path / "s")
    with store.writer():
        summary = ray_engine.index_with_ray(data, store, worker(engine), SCORE, 2,
                                            recipe=CountingRecipe(WorkerRecipe.of(worker(engine)), str(second)))
    assert rows_logged(second) == (8 - kept) * WINDOWS  # only the rest is encoded
    assert summary.indexed == 8 - kept and len(Store.open(tmp_path / "s")) == 8 and len(summary.failed) == 2
    assert summary.already + summary.duplicates == kept + 1  # the copy of scene0 is skipped either way


@dataclass(frozen=True)
class UnloadableRecipe:
    """An actor whose worker cannot be built (weights missing on its node, say)."""

    def __call__(self, device: str) -> IndexWorker:
        raise RuntimeError("cannot load the weights on this node")


def test_an_actor_that_cannot_start_fails_fast_with_its_reason(cluster, engine, data, tmp_path):
    store = new_store(engine, tmp_path / "s")
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"stopped after 0 new images.*RuntimeError: cannot load the weights"), \
            store.writer():
        ray_engine.index_with_ray(data, store, worker(engine), SCORE, 2, recipe=UnloadableRecipe())
    assert time.monotonic() - t0 < 60  # not restarted forever, nor left waiting for the pool
    assert len(Store.open(tmp_path / "s")) == 0


def test_without_ray_the_command_says_how_to_install_it(monkeypatch, tmp_path, capsys, data):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(UserError, match=r"pip install -e \.\[ray\]"):
        ray_engine.import_ray()
    folder = str(Path(data[0].path).parent)
    code = main(["index", folder, "--out", str(tmp_path / "s"), "--engine", "ray", "--model", "test-tiny",
                 "--vocabulary", "synthetic-shapes", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install -e .[ray]" in err and "--engine local" in err
    assert not (tmp_path / "s").exists()  # refused before a model was loaded or a store made


def test_pool_size_leaves_a_cpu_and_counts_gpus():
    assert ray_engine.pool_size({"CPU": 2.0}, None, 1.0, None) == (1, 0.0, 1.0)  # 1 actor, 1 CPU left to decode
    assert ray_engine.pool_size({"CPU": 16.0}, None, 1.0, None) == (1, 0.0, 15.0)
    assert ray_engine.pool_size({"CPU": 1.0}, None, 1.0, None) == (1, 0.0, 0.5)  # half of the only CPU
    assert ray_engine.pool_size({"CPU": 16.0, "GPU": 8.0}, None, 1.0, None) == (8, 1.0, 1.0)
    assert ray_engine.pool_size({"CPU": 16.0, "GPU": 8.0}, 2, 1.0, None) == (2, 1.0, 1.0)
    assert ray_engine.pool_size({"CPU": 16.0, "GPU": 8.0}, 8, 0.5, None) == (16, 0.5, 1.0)
    assert ray_engine.pool_size({"CPU": 16.0, "GPU": 8.0}, 0, 1.0, None) == (1, 0.0, 15.0)  # GPUs left alone
    with pytest.raises(UserError, match="has 8 GPUs"):
        ray_engine.pool_size({"CPU": 16.0, "GPU": 8.0}, 9, 1.0, None)
    with pytest.raises(UserError, match="has 0 GPUs"):
        ray_engine.pool_size({"CPU": 2.0}, 1, 1.0, None)
    with pytest.raises(UserError, match="need 3 CPUs"):
        ray_engine.pool_size({"CPU": 2.0}, None, 1.0, 2)


def test_the_command_indexes_on_ray_and_the_local_engine_resumes_it(cluster, data, tmp_path, capsys):
    folder, out = str(Path(data[0].path).parent), str(tmp_path / "s")
    flags = ["--model", "test-tiny", "--vocabulary", "synthetic-shapes", "--device", "cpu", "--json",
             "--images-per-forward", "1", "--images-per-shard", "4"]
    assert main(["index", folder, "--out", out, "--engine", "ray", "--num-gpus", "0", *flags]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["indexed"], first["duplicates"], len(first["failed"]), first["images"]) == (8, 1, 2, 8)
    assert main(["index", folder, "--out", out, *flags]) == 0  # the local engine finds nothing left to do
    again = json.loads(capsys.readouterr().out)
    assert (again["indexed"], again["already"], again["images"]) == (0, 9, 8)  # 8 stored + the copy

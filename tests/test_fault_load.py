"""Fault and load suite: the served app under hostile files, hostile payloads, a queue bypass,
concurrent clients and a slow model load. Each test asserts a clear error, a live server and
bounded memory of the server process, measured from outside (`python app.py --model test-tiny`
in a subprocess; peak RSS is its VmHWM).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import APP_TOY, load_app
from hostile import hostile_files

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAT = str(ROOT / "assets" / "examples" / "cat.jpg")
MIB = 2**20


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


class Server:
    """`python app.py --model test-tiny` on a loopback port, with its memory readable.

    Args:
        args: more flags; env: more environment; script: another entry point (tests/fault_server.py).
    """

    def __init__(self, args: tuple[str, ...] = (), env: dict | None = None, script: Path = ROOT / "app.py") -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        # A file, not a pipe: a pipe nobody reads fills up and stalls the server's logging.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="convis-fault-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, str(script), "--model", "test-tiny", "--host",
                                      "127.0.0.1", "--port", str(self.port), *args], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            assert self.proc.poll() is None, self.stderr()[-3000:]
            try:
                urllib.request.urlopen(self.url, timeout=2).read(10)
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("server did not come up")

    def rss(self) -> float:
        return _mib(self.proc.pid, "VmRSS")

    def peak(self) -> float:
        return _mib(self.proc.pid, "VmHWM")

    def alive(self, query: str = "dog", synset: str = "dog.n.01") -> bool:
        """The process runs and still answers a search (`synset` is `query`'s top hit in its concept set)."""
        return self.proc.poll() is None and Client(self.url, verbose=False).predict(
            query, 1, api_name="/search")[0]["synset"] == synset

    def stderr(self) -> str:
        """What the server logged so far."""
        self.log.flush()
        return Path(self.log.name).read_text()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server():
    srv = Server()
    try:
        client = Client(srv.url, verbose=False)
        try:
            client.predict("dog", 1, api_name="/search")
        except AppError as exc:
            pytest.skip(f"WordNet is not available: {exc}")
        client.predict(handle_file(CAT), 3, api_name="/top_concepts")  # warm-up: one index
        srv.idle = srv.rss()
        yield srv
    finally:
        srv.close()


def _clear(exc: BaseException) -> str:
    text = str(exc)
    assert "Traceback" not in text and "/tmp/" not in text and str(ROOT) not in text, text
    return text


# ---- the queue nobody can skip ---------------------------------------------------------------------
@pytest.mark.wordnet
@pytest.mark.parametrize("name", ["search", "explain", "top_concepts", "select_node", "index_image"])
def test_rest_calls_outside_the_queue_are_refused(server, name):
    req = urllib.request.Request(f"{server.url}gradio_api/run/{name}", data=json.dumps({"data": ["dog", 5]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code in (404, 405, 422), err.value.code


# ---- hostile payloads (run first: VmHWM only grows) ------------------------------------------------
PAYLOADS = [
    ("/explain", lambda: (handle_file(CAT), "x" * 1_000_000, "overlay"), "characters long"),
    ("/explain", lambda: (handle_file(CAT), "q" * 16_000 + ".n.01", "overlay"), "characters long"),
    ("/explain", lambda: (handle_file(CAT), "dog.n.01", "s" * 1_000_000), "characters long"),
    ("/explain", lambda: (handle_file(CAT), "nonexistent.n.99", "overlay"), "unknown synset"),
    ("/explain", lambda: (handle_file(CAT), "dog.n.01", "sepia"), "unknown style"),
    ("/search", lambda: ("d" * 1_000_000, 5), "characters long"),
    ("/search", lambda: ("dog", -1), "limit must be from 1 to 200"),
    ("/search", lambda: ("dog", 10**12), "limit must be from 1 to 200"),
    ("/top_concepts", lambda: (handle_file(CAT), -5), "k must be from 1 to 100"),
    ("/top_concepts", lambda: (handle_file(CAT), 1e15), "k must be from 1 to 100"),
]


@pytest.mark.wordnet
def test_hostile_payloads_get_a_clear_error_fast_and_cost_no_memory(server):
    client = Client(server.url, verbose=False)
    before = server.peak()
    times = {}
    for i, (api, args, message) in enumerate(PAYLOADS):
        t0 = time.perf_counter()
        with pytest.raises(AppError, match=message) as err:
            client.predict(*args(), api_name=api)
            pytest.fail(f"payload {i} to {api} was accepted")
        times[i] = time.perf_counter() - t0
        _clear(err.value)
        assert len(str(err.value)) < 600, "the error does not echo the payload"
    print("payload seconds:", {i: round(t, 2) for i, t in times.items()},
          f"peak RSS growth {server.peak() - before:.0f} MiB")
    # Marked wall-clock bound (README, Tests): the issue asks 1 s; the bound keeps headroom for a busy
    # CI machine (a 1 MB upload included). A payload that were processed (1e6 characters encoded,
    # searched) takes far longer.
    assert max(times.values()) < 3.0, times
    assert server.peak() - before <= 50, f"peak RSS grew {server.peak() - before:.0f} MiB"
    assert server.alive()


@pytest.mark.wordnet
def test_url_inputs_are_refused(server):
    with pytest.raises(AppError, match="does not fetch images from URLs") as err:
        Client(server.url, verbose=False).predict(handle_file("http://127.0.0.1:9/cat.jpg"), 3,
                                                  api_name="/top_concepts")
    _clear(err.value)


# ---- hostile files ------------------------------------------------------------------------------
@pytest.mark.wordnet
def test_hostile_files_are_refused_or_served_within_budget(server, tmp_path):
    files = hostile_files(tmp_path / "hostile")
    client = Client(server.url, verbose=False)
    seconds = {}
    for name, (path, expect) in files.items():
        t0 = time.perf_counter()
        try:
            top = client.predict(handle_file(str(path)), 3, api_name="/top_concepts")
            got = "served"
            assert len(top) == 3, name
        except AppError as exc:
            got = "refused"
            _clear(exc)
            assert Path(path).name in str(exc) or "image" in str(exc), (name, str(exc))
        seconds[name] = round(time.perf_counter() - t0, 1)
        assert got == expect, (name, got)
    print("seconds per file:", seconds, f"peak RSS over idle: {server.peak() - server.idle:.0f} MiB")
    assert max(seconds.values()) < 30, seconds  # marked wall-clock bound: the issue asks 10 s; headroom for CI
    assert server.peak() - server.idle <= 1536, f"peak {server.peak():.0f} MiB, idle {server.idle:.0f} MiB"
    assert server.alive()


# ---- concurrent clients ---------------------------------------------------------------------------
@pytest.mark.wordnet
def test_concurrent_clients_get_no_errors_and_memory_stays_flat(server, tmp_path):
    from PIL import Image
    import numpy as np

    pictures = []
    for i in range(3):
        p = tmp_path / f"load_{i}.png"
        Image.fromarray(np.random.default_rng(10 + i).integers(0, 255, (60, 80, 3), np.uint8)).resize((240, 180)).save(p)
        pictures.append(str(p))
    warm = Client(server.url, verbose=False)
    for p in pictures:
        warm.predict(handle_file(p), 3, api_name="/top_concepts")
    base, peak, stop, errors, done = server.rss(), [0.0], threading.Event(), [], []

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss())
            time.sleep(0.05)

    def user(seed: int) -> None:
        rnd, c = random.Random(seed), Client(server.url, verbose=False)
        for _ in range(12):
            kind = rnd.choice(["search", "search", "explain", "top"])
            try:
                if kind == "search":
                    c.predict(rnd.choice(["dog", "cat", "n02084071", "tree", "a"]), 10, api_name="/search")
                elif kind == "explain":
                    c.predict(handle_file(rnd.choice(pictures)), "animal.n.01", "overlay", api_name="/explain")
                else:
                    c.predict(handle_file(rnd.choice(pictures)), 5, api_name="/top_concepts")
                done.append(kind)
            except Exception as exc:  # noqa: BLE001 - every error fails the test below
                errors.append(f"{kind}: {exc}")

    sampler = threading.Thread(target=sample)
    sampler.start()
    users = [threading.Thread(target=user, args=(i,)) for i in range(8)]
    for t in users:
        t.start()
    for t in users:
        t.join()
    stop.set()
    sampler.join()
    print(f"{len(done)} requests, RSS after warm-up {base:.0f} MiB, peak {peak[0]:.0f} MiB")
    assert not errors, errors[:5]
    assert len(done) == 96
    assert peak[0] - base <= 300, f"RSS grew {peak[0] - base:.0f} MiB"
    assert server.alive()


# ---- a slow model load in one session while another browses (in-process, injected loader) ---------
@pytest.fixture()
def slow_app():
    from convis.app import Backend
    from convis.concepts.hierarchy import toy_hierarchy
    from convis.clip.models import load_model

    release, started = threading.Event(), threading.Event()

    def slow_loader(name, tag, device="cpu", **_):
        started.set()
        release.wait(30)  # stands in for a 30 s download; released as soon as the checks are done
        return load_model("test-tiny", "none", device="cpu")

    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)},
                      loader=slow_loader)
    app = load_app()
    demo = app.create_demo(backend, examples=[])
    _, url, _ = app.launch(demo, host="127.0.0.1", port=_port(), prevent_thread_lock=True, quiet=True)
    tree = next(b for b in demo.blocks.values() if type(b).__name__ == "SynsetTree")
    yield url, tree._id, started, release
    release.set()
    demo.close()


def test_back_to_back_jobs_of_one_session_are_never_refused(server):
    """A client that asks again the moment its job is done must not meet the one-job guard: the done
    job leaves the queue's table a few awaits after its client hears of it (a race seen once in 96)."""
    client = Client(server.url, verbose=False)
    for _ in range(20):
        assert len(client.predict(handle_file(CAT), 2, api_name="/top_concepts")) == 2


def test_slow_model_load_does_not_delay_other_sessions(slow_app):
    url, tree_id, started, release = slow_app
    loader_session = Client(url, verbose=False)
    job = loader_session.submit(handle_file(CAT), 3, api_name="/top_concepts")  # loads the engine: slow
    assert started.wait(60), "the load began"
    # The same session cannot queue a second CLIP job meanwhile: refused at once, not queued.
    with pytest.raises(Exception, match="400"):  # queued, it would wait for the load: a timeout, not a 400
        loader_session.submit(handle_file(CAT), 3, api_name="/top_concepts").result(timeout=30)

    browser = Client(url, verbose=False)
    worst = 0.0
    for i in range(5):
        t0 = time.perf_counter()
        assert browser.predict("dog", 3, api_name="/search")[0]["synset"] == "dog.n.01"
        body = {"session_hash": f"browse{i}", "component_id": tree_id, "fn_name": "fetch_children",
                "data": {"vocabulary": "toy", "synset": "device.n.01", "offset": 100, "limit": 100}}
        req = urllib.request.Request(f"{url}gradio_api/component_server", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        page = json.loads(urllib.request.urlopen(req, timeout=30).read())
        assert page["total"] == 130 and len(page["items"]) == 30
        worst = max(worst, time.perf_counter() - t0)
    print(f"worst search + tree page during the load: {worst:.3f} s")
    assert not job.done(), "the load was still running while the other session browsed"
    # Marked wall-clock bound: blocked by the load, a page would wait for `release` (30 s); measured
    # ~0.05 s, so 5 s fails on a wait, not on a slow machine.
    assert worst < 5.0, f"search + tree page took {worst:.2f} s during another session's load"
    release.set()
    assert len(job.result(timeout=120)) == 3


# ---- the app's own events (as the page sends them, tests/wire.py) ---------------------------------
def _picture(path: Path, width: int, height: int, seed: int = 0) -> Path:
    from PIL import Image
    import numpy as np

    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    return path


def _indexed_tab(url: str, path: Path, config: dict | None = None):
    """A tab that uploaded `path` and indexed it (the page's two events): (tab, its FileData, status)."""
    from wire import Tab

    tab = Tab(url, config)
    file = tab.upload(path)
    tab.call("mark_upload", file, None)
    out = tab.call("index_image", file, None)
    return tab, file, out[3]


@pytest.mark.wordnet
def test_a_5_to_1_panorama_in_the_default_mode_maps_its_centre_strip(server, tmp_path):
    _, _, status = _indexed_tab(server.url, _picture(tmp_path / "pano.png", 1000, 200))
    assert "windows over the centre 4:1 strip of the picture" in status and "longer than 4:1" in status
    _clear(Exception(status))
    assert server.alive()


@pytest.mark.wordnet
def test_a_region_switch_after_the_upload_is_deleted_says_upload_again(server, tmp_path):
    tab, file, status = _indexed_tab(server.url, _picture(tmp_path / "gone.png", 300, 200, seed=4))
    assert "indexed" in status
    Path(file["path"]).unlink()  # what Gradio's hourly clean-up (or the disk budget) does
    status = tab.call("set_region", "Centre square (the paper)", None)[2]  # (state, map, status, ...)
    assert "gone.png is no longer on the server" in status and "upload it again" in status
    _clear(Exception(status))
    assert server.alive()


def _blocked_cache(tmp_path: Path) -> Path:
    """A cache folder that cannot be made or written, whoever runs the test (root ignores chmod):
    it would sit below a plain file, as a read-only disk refuses writes with an OSError."""
    (tmp_path / "blocker").write_text("a file where the cache folder should be")
    return tmp_path / "blocker" / "convis-cache"


def _corrupt_hierarchy_cache(root: Path) -> Path:
    """A cache whose `physical` hierarchy file is damaged (half a gzip stream)."""
    import re

    from convis.concepts.wordnet import _resolve_vocabulary

    key = re.sub(r"[^A-Za-z0-9_.-]+", "-", _resolve_vocabulary("physical")[2])
    (root / "hierarchy").mkdir(parents=True)
    (root / "hierarchy" / f"{key}-wn3.0.json.gz").write_bytes(b"\x1f\x8b\x08\x00 half a file")
    return root


@pytest.mark.wordnet
@pytest.mark.parametrize("cache, warning", [
    (_blocked_cache, "kept in memory only"),
    (lambda tmp: _corrupt_hierarchy_cache(tmp / "cache"), "ignoring unreadable hierarchy cache"),
], ids=["read-only cache", "corrupt hierarchy cache"])
def test_a_damaged_disk_cache_costs_a_warning_not_the_service(tmp_path, cache, warning):
    srv = Server(env={"CONVIS_CACHE": str(cache(tmp_path))})
    try:
        client = Client(srv.url, verbose=False)
        assert client.predict("dog", 1, api_name="/search")[0]["synset"] == "dog.n.01"
        assert len(client.predict(handle_file(CAT), 3, api_name="/top_concepts")) == 3
        assert warning in srv.stderr() and "Traceback" not in srv.stderr()
    finally:
        srv.close()


@pytest.mark.wordnet
def test_600_stochastic_maps_across_tabs_stay_in_the_index_budget(tmp_path):
    """60 tabs make 10 stochastic maps each, 600 in all, on 12 pictures (4:1: 224 x 896 float32
    maps, 0.8 MB each). Before, a tab kept its last 4 outside any budget (190 MB here, 1.6 GB with
    512 tabs); now they count in --index-mib. RSS is read from outside, after the tabs exist (their
    Gradio state is Gradio's), while the maps are made."""
    import convis.eval  # noqa: F401 - registers the synthetic-shapes vocabulary, as app.py does
    from convis.concepts.wordnet import load_hierarchy

    budget, per_picture, config = 48, 50, None
    srv = Server(("--vocabulary", "synthetic-shapes", "--index-mib", str(budget)),
                 script=ROOT / "tests" / "fault_server.py",
                 # Two malloc arenas: the threads' own arenas would keep freed pages resident, and
                 # RSS would then measure glibc's caching, not what the app holds.
                 env={"MALLOC_ARENA_MAX": "2", **json.loads(os.environ.get("FAULT_ENV", "{}"))})
    try:
        names = load_hierarchy("synthetic-shapes").ids[:per_picture]
        pictures = [_picture(tmp_path / f"p{i}.png", 896, 224, seed=20 + i) for i in range(12)]
        tabs = []
        for t in range(60):  # tab t maps pairs 10t .. 10t + 9 of (picture, concept): picture t // 5
            tab, file, _ = _indexed_tab(srv.url, pictures[10 * t // per_picture], config)
            config = tab.config
            tab.call("set_method", "Stochastic (sequential, slower)", False, None)
            tabs.append((tab, file))
        base, made, errors = srv.rss(), [], []

        def work(ts: list[int]) -> None:
            for t in ts:
                tab, file = tabs[t]
                try:
                    tab.call("mark_upload", file, None)  # the same upload again: indexed again if dropped
                    tab.call("index_image", file, None)
                    for pair in range(10 * t, 10 * t + 10):
                        tab.call("select_node", None, event_data={"synset": names[pair % per_picture]})
                        made.append("stochastic map" in str(tab.call("stochastic", None)[2]))  # (state, map, status)
                except Exception as exc:  # noqa: BLE001 - every error fails the test below
                    errors.append(repr(exc))

        workers = [threading.Thread(target=work, args=(list(range(i, 60, 3)),)) for i in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        grown = srv.peak() - base
        print(f"{sum(made)} stochastic maps in 60 tabs; peak RSS {grown:.0f} MiB over the tabs' start "
              f"(budget {budget} MiB)")
        assert not errors, errors[:3]
        assert sum(made) == 600
        # Measured 75-95 MiB alone and 151 MiB once while other tests ran on this 2-core machine
        # (the budget, plus what a flood of events costs besides: Gradio's queue, indexing buffers,
        # malloc's fragmentation); 456 MiB with the maps kept outside the budget (each tab's last 4
        # alone add 184 MB here). The bound keeps headroom over that noise and still fails the leak.
        assert grown <= budget + 160, f"RSS grew {grown:.0f} MiB for a {budget} MiB budget"
        assert srv.alive("circle", "circle.n.01")  # this server serves the synthetic-shapes concepts
    finally:
        srv.close()


def _folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / MIB


@pytest.mark.wordnet
def test_gradio_cache_stays_in_its_disk_budget_under_a_flood_of_exports(tmp_path):
    cache, budget = tmp_path / "gradio", 8
    srv = Server(("--cache-mib", str(budget)), env={"GRADIO_TEMP_DIR": str(cache)})
    try:
        from wire import Tab

        config, worst, sets = Tab(srv.url).config, 0.0, 0
        for t in range(10):  # 10 tabs x 4 export sets of cat.jpg (~1.5 MB each): 60 MB unbounded
            tab, _, status = _indexed_tab(srv.url, Path(CAT), config)
            assert "indexed" in status
            for _ in range(4):
                files = tab.call("export", None)[0]
                sets += len(files) == 3
                worst = max(worst, _folder_mib(cache))
        print(f"{sets} export sets; Gradio's cache folder at most {worst:.1f} MiB (budget {budget} MiB)")
        assert sets == 40
        assert worst <= budget + 3, f"the cache folder reached {worst:.1f} MiB"  # + the newest set (~1.7 MB)
        examples = {p.name for p in (ROOT / "assets" / "examples").glob("*.jpg")}
        assert examples and examples <= {p.name for p in cache.rglob("*.jpg")}, \
            "the examples' copies stay (Gradio copies them once, with their old mtime)"
        assert srv.alive()
    finally:
        srv.close()

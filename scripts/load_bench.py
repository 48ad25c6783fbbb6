"""Load benchmark: N gradio_client clients send mixed requests to a served app; prints figures.

    python scripts/load_bench.py                       # starts `python app.py --model test-tiny`
    python scripts/load_bench.py --clients 8 --requests 25
    python scripts/load_bench.py --url http://127.0.0.1:7860   # an already running server (no RSS)
    python scripts/load_bench.py --app /tmp/old/app.py          # another checkout (A/B in one session)

Each client mixes `/search` (browsing), `/explain` (a map; the first call per picture indexes it)
and `/top_concepts` over a few generated pictures. Prints requests/s, p50/p95 latency per kind,
errors, and the server's RSS: idle, after warm-up, peak (VmHWM) and growth after warm-up.
A figure-printing script, not a test: compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["dog", "cat", "n02084071", "vehicle", "tree", "bird.n.01", "chair", "food", "a", "person"]
SYNSETS = ["animal.n.01", "dog.n.01", "vehicle.n.01", "plant.n.02", "person.n.01", "artifact.n.01"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident (VmRSS) or peak resident (VmHWM) memory of a process, MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(app: Path, model: str, port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(app.parent)}
    proc = subprocess.Popen([sys.executable, str(app), "--model", model, "--host", "127.0.0.1",
                             "--port", str(port), *extra], cwd=app.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read(100)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not come up in 300 s")


def make_images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        a = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        p = folder / f"bench_{i}.png"
        Image.fromarray(a).resize((320, 240)).save(p)
        paths.append(str(p))
    return paths


def client_loop(url: str, images: list[str], requests: int, seed: int, out: list, errors: list) -> None:
    from gradio_client import Client, handle_file

    rnd = random.Random(seed)
    client = Client(url, verbose=False)
    for _ in range(requests):
        kind = rnd.choices(["search", "explain", "top"], weights=[5, 3, 2])[0]
        t0 = time.perf_counter()
        try:
            if kind == "search":
                client.predict(rnd.choice(QUERIES), 10, api_name="/search")
            elif kind == "explain":
                client.predict(handle_file(rnd.choice(images)), rnd.choice(SYNSETS), "overlay",
                               api_name="/explain")
            else:
                client.predict(handle_file(rnd.choice(images)), 5, api_name="/top_concepts")
            out.append((kind, time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:120]}")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="per client")
    p.add_argument("--images", type=int, default=4, help="distinct generated pictures")
    p.add_argument("--model", default="test-tiny")
    p.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app.py to serve (its folder goes first on PYTHONPATH)")
    p.add_argument("--url", default=None, help="benchmark a running server instead of starting one")
    p.add_argument("--server-arg", action="append", default=[], help="extra flag for app.py (repeatable)")
    args = p.parse_args()

    proc = None
    url = args.url
    if url is None:
        port = free_port()
        t0 = time.perf_counter()
        proc = start_server(args.app.resolve(), args.model, port, args.server_arg)
        url = f"http://127.0.0.1:{port}"
        print(f"server up in {time.perf_counter() - t0:.1f} s (python {args.app} --model {args.model})")
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and proc is not None:
            peak[0] = max(peak[0], rss_mib(proc.pid))
            time.sleep(0.05)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            images = make_images(Path(tmp), args.images)
            idle = rss_mib(proc.pid) if proc else float("nan")
            # Warm-up: index every picture once, so growth below is per-request memory, not the cache.
            from gradio_client import Client, handle_file

            c = Client(url, verbose=False)
            t0 = time.perf_counter()
            for img in images:
                c.predict(handle_file(img), 3, api_name="/top_concepts")
            warm_s = time.perf_counter() - t0
            warm_rss = rss_mib(proc.pid) if proc else float("nan")
            threading.Thread(target=sample, daemon=True).start()
            out: list = []
            errors: list = []
            threads = [threading.Thread(target=client_loop, args=(url, images, args.requests, i, out, errors))
                       for i in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            stop.set()
            end_rss = rss_mib(proc.pid) if proc else float("nan")
            hwm = rss_mib(proc.pid, "VmHWM") if proc else float("nan")
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            proc.wait(10)

    lat = [s for _, s in out]
    print(f"clients={args.clients} requests/client={args.requests} total={len(out) + len(errors)} "
          f"ok={len(out)} errors={len(errors)} wall={wall:.1f} s warm-up={warm_s:.1f} s")
    print(f"throughput: {len(out) / wall:.2f} requests/s")
    print(f"latency all: p50 {1000 * pct(lat, 50):.0f} ms  p95 {1000 * pct(lat, 95):.0f} ms")
    for kind in ("search", "explain", "top"):
        ks = [s for k, s in out if k == kind]
        if ks:
            print(f"  {kind:8s} n={len(ks):3d}  p50 {1000 * pct(ks, 50):.0f} ms  p95 {1000 * pct(ks, 95):.0f} ms"
                  f"  max {1000 * max(ks):.0f} ms  mean {1000 * statistics.mean(ks):.0f} ms")
    print(f"server RSS: idle {idle:.0f} MiB, after warm-up {warm_rss:.0f} MiB, peak during load {peak[0]:.0f} MiB, "
          f"end {end_rss:.0f} MiB, VmHWM {hwm:.0f} MiB; growth after warm-up {peak[0] - warm_rss:.0f} MiB")
    for e in errors[:10]:
        print("  error:", e)


if __name__ == "__main__":
    main()

"""The command line end to end, with the tiny model and the real WordNet."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convis.cli.commands import main

REPO = Path(__file__).resolve().parents[1]
CAT = str(REPO / "assets" / "examples" / "cat.jpg")
WORDLIST = REPO.parent / "shared" / "data" / "physical_objects.txt"

pytestmark = pytest.mark.wordnet


@pytest.fixture(scope="module", autouse=True)
def wordnet_available():
    from convis.concepts.wordnet import WordNetUnavailableError, load_hierarchy

    try:
        load_hierarchy("physical")
    except WordNetUnavailableError as e:
        pytest.skip(f"WordNet not available: {e}")


def test_explain_writes_png_npy_and_json(tmp_path, capsys):
    out, npy = tmp_path / "x.png", tmp_path / "x.npy"
    code = main(["explain", CAT, "--concept", "dog.n.01", "--model", "test-tiny", "--out", str(out),
                 "--npy", str(npy), "--json", "--box", "0.5", "--colorbar"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["concepts"] == ["dog.n.01"] and summary["model"] == "test-tiny/none" and summary["precision"] == "fp32"
    assert summary["crop"] == [75, 0, 375, 300]  # cat.jpg is 451 x 300
    img = Image.open(out)
    assert img.size[1] == 300 and img.size[0] > 300  # the crop, plus the colorbar strip
    m = np.load(npy)
    assert m.shape == (224, 224) and m.min() == 0.0 and m.max() == 1.0


def test_explain_several_concepts_makes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    assert main(["explain", CAT, "--concept", "dog.n.01", "--concept", "feline", "--model", "test-tiny",
                 "--style", "white", "--out", str(out), "--npy", str(tmp_path / "g.npy")]) == 0
    assert np.load(tmp_path / "g.npy").shape == (2, 224, 224)
    assert Image.open(out).size[0] > Image.open(out).size[1]  # panels side by side


def test_unknown_concept_fails_fast_with_a_suggestion(tmp_path, capsys):
    code = main(["explain", CAT, "--concept", "dgo.n.01", "--model", "test-tiny", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "dog.n.01" in err and "did you mean" in err
    assert not (tmp_path / "x.png").exists()


def test_whole_picture_of_a_panorama_maps_its_centre_strip_and_says_so(tmp_path, capsys):
    pano = tmp_path / "pano.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 500, 3), np.uint8)).save(pano)  # 5:1
    out, npy = tmp_path / "p.png", tmp_path / "p.npy"
    code = main(["explain", str(pano), "--concept", "dog.n.01", "--model", "test-tiny", "--whole", "--json",
                 "--out", str(out), "--npy", str(npy)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert "longer than 4:1" in captured.err and "centre strip (50, 0, 450, 100)" in captured.err
    summary = json.loads(captured.out)
    assert summary["crop"] == [50, 0, 450, 100] and summary["trimmed"] is True  # 400 x 100: 4:1
    assert np.load(npy).shape == (224, 896) and Image.open(out).size == (400, 100)


def test_broken_image_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code = main(["explain", str(bad), "--concept", "dog.n.01", "--model", "test-tiny", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "image" in capsys.readouterr().err


def test_missing_weights_offline_is_a_clear_error(tmp_path, capsys):
    code = main(["top", CAT, "--model", "ViT-B-32", "--pretrained", "openai"])
    err = capsys.readouterr().err
    assert code == 2 and "--pretrained" in err and "test-tiny" in err
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only user errors become a one-line message; a plain ValueError or KeyError is a bug."""
    import convis.cli.commands

    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(convis.cli.commands, "cmd_concepts", broken)
    with pytest.raises(KeyError, match="internal"):
        main(["concepts", "stats", "--vocabulary", "physical"])


def test_top_lists_k_concepts(capsys):
    assert main(["top", CAT, "--model", "test-tiny", "-k", "5", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 5 and all({"synset", "score", "gloss"} <= set(t) for t in top)
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)


def test_concepts_search_show_and_stats(capsys):
    assert main(["concepts", "search", "dog"]) == 0
    hits = [h["synset"] for h in json.loads(capsys.readouterr().out)]
    assert hits[0] == "dog.n.01"
    assert main(["concepts", "show", "n02084071"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["synset"] == "dog.n.01" and "canine.n.02" in shown["parents"]
    assert main(["concepts", "stats", "--concept", "bird.n.01"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["concepts"] == 7156 and stats["subtree"] == 56


@pytest.mark.skipif(not WORDLIST.is_file(), reason="the paper's word list lives in ../shared/data")
def test_concepts_stats_reproduces_the_papers_concept_set(capsys):
    assert main(["concepts", "stats", "--vocabulary", f"wordlist:{WORDLIST}", "--concept", "bird.n.01"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["concepts"] == 7080 and stats["subtree"] == 91 and stats["leaves"] == 3914


def test_module_entry_point_runs(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "convis", "concepts", "stats"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0 and json.loads(done.stdout)["concepts"] == 7156


def test_bench_reports_every_figure(capsys):
    assert main(["bench", "--model", "test-tiny", "--reference-sample", "20", "--bank-sample", "40", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("windows", "index_seconds", "encoder_images_per_second", "map_ms_median",
                "reference_one_concept_seconds", "speedup_first_concept", "speedup_ten_concepts",
                "bank_padded_seconds", "bank_bucketed_seconds", "box_accuracy_ms_per_map",
                "render_grid_six_panels_seconds"):
        assert figures[key] > 0, key
    assert figures["windows"] == 730 and figures["reference_windows"] == 1800
    assert figures["bank_max_abs_diff"] < 1e-5
    # Issue 9's figures: the first stage is 36 windows and comes before the full index.
    assert figures["preview_windows"] == 36
    stages = figures["progressive_stages"]
    assert [s["windows"] for s in stages] == [36, 121, 202, 730]
    assert 0 < figures["first_preview_seconds"] == stages[0]["seconds"] < stages[-1]["seconds"]
    for key in ("gemm_gflops", "encoder_gflop_per_image", "encoder_peak_fraction", "int8_images_per_second"):
        assert figures[key] > 0, key

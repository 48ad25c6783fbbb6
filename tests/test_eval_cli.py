"""`convis eval ...` end to end on tiny fixtures, with the random test-tiny CLIP and a small word list.

The figures are meaningless (random weights); these tests check that each command runs, reads its
layout, reports what it skipped, and writes well-formed CSV and JSON.
"""

import csv
import json

import pytest

from convis.cli.commands import main
from _datasets import VOC_XML, _image, make_cub, make_imagenet

pytestmark = pytest.mark.wordnet
WORDS = ["bird", "dog", "cat", "garment", "furniture", "car"]
TINY = ["--model", "test-tiny", "--pretrained", "none", "--seed", "1"]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "words.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return ["--vocabulary", f"wordlist:{path}"]


def run(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_wsol_cub(tmp_path, vocab, capsys):
    root = make_cub(tmp_path / "cub", n=4)
    out = tmp_path / "out"
    summary = run(["eval", "wsol", str(root), "-n", "3", "--methods", "grid,raw,dense,centre", "--json",
                   "--out", str(out), *TINY, *vocab], capsys)
    assert summary["images"] == 3 and summary["skipped"] == 0 and summary["seed"] == 1
    for m in ("grid", "raw", "dense", "centre"):
        figs = summary["methods"][m]
        assert 0.0 <= figs["maxboxacc"] <= 1.0 and 0.0 <= figs["maxboxacc_v2"] <= 1.0
    table = rows(out / "wsol_images.csv")
    assert len(table) == 3 and {r["concept"] for r in table} == {"bird.n.01"}
    assert json.loads((out / "wsol_summary.json").read_text())["images"] == 3


def test_wsol_imagenet_per_class_with_ancestor_fallback(tmp_path, vocab, capsys):
    stems = make_imagenet(tmp_path / "val", per_class=1)  # brambling (a finch) and Chihuahua
    xml = tmp_path / "xml"
    xml.mkdir()
    for stem, wnid in zip(stems, ("n01530575", "n02085620")):
        (xml / f"{stem}.xml").write_text(VOC_XML.replace("dog", wnid).format(name=stem))
    out = tmp_path / "out"
    summary = run(["eval", "wsol", str(tmp_path / "val"), "--layout", "imagenet", "--boxes", str(xml),
                   "--fallback", "ancestor", "--json", "--out", str(out), *TINY, *vocab], capsys)
    assert summary["images"] == 2
    assert [r["concept"] for r in rows(out / "wsol_images.csv")] == ["bird.n.01", "dog.n.01"]


def test_wsol_notes_name_the_fallbacks(tmp_path, vocab, capsys):
    make_imagenet(tmp_path / "val", per_class=1)
    xml = tmp_path / "xml"
    xml.mkdir()
    assert main(["eval", "wsol", str(tmp_path / "val"), "--layout", "imagenet", "--boxes", str(xml), *TINY,
                 *vocab]) == 0
    err = capsys.readouterr().err
    assert "not in the vocabulary" in err and "n01530575" in err  # default: skipped, and said so
    assert "0 images scored, 2 skipped" in err


def test_pointing_voc_reports_unmapped_classes(tmp_path, vocab, capsys):
    (tmp_path / "Annotations").mkdir()
    for k, extra in enumerate(("", "motorbike")):
        name = f"00000{k}"
        body = VOC_XML.format(name=name)
        if extra:
            body = body.replace("<name>cat</name>", f"<name>{extra}</name>")
        (tmp_path / "Annotations" / f"{name}.xml").write_text(body)
        _image(tmp_path / "JPEGImages" / f"{name}.jpg", size=(120, 90), seed=k)
    out = tmp_path / "out"
    summary = run(["eval", "pointing", "--voc", str(tmp_path), "--methods", "grid,centre", "--json",
                   "--out", str(out), *TINY, *vocab], capsys)
    assert summary["classes"]["missing"] == ["motorbike"]  # motorcycle.n.01 is not in the word list
    assert summary["pairs"] == 3  # dog twice, cat once
    assert set(summary["methods"]["grid"]) >= {"all", "difficult", "class_mean", "per_class"}
    assert {r["class"] for r in rows(out / "pointing_images.csv")} == {"dog", "cat"}


def test_pointing_coco(tmp_path, vocab, capsys):
    data = {"images": [{"id": 1, "file_name": "a.jpg"}],
            "annotations": [{"image_id": 1, "category_id": 18, "bbox": [10, 10, 40, 30]},
                            {"image_id": 1, "category_id": 88, "bbox": [60, 40, 20, 20]}],
            "categories": [{"id": 18, "name": "dog"}, {"id": 88, "name": "teddy bear"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    _image(tmp_path / "img" / "a.jpg", size=(100, 80))
    coco = ["--coco", str(tmp_path / "ann.json"), "--images", str(tmp_path / "img")]
    summary = run(["eval", "pointing", *coco,
                   "--json", *TINY, *vocab], capsys)
    assert summary["pairs"] == 1 and summary["classes"]["missing"] == ["teddy bear"]


def test_ood_split(tmp_path, vocab, capsys):
    make_imagenet(tmp_path / "val", classes=("n02667093", "n02791124", "n01530575"), per_class=3)
    summary = run(["eval", "ood", str(tmp_path / "val"), "--splits", "garment-furniture,bird-hunting_dog",
                   "--json", *TINY, *vocab], capsys)
    split = summary["splits"]["garment-furniture"]  # abaya is a garment, barber chair furniture
    assert split["id_images"] == 3 and split["ood_images"] == 3
    for score in ("naive", "hierarchy", "lemmas"):
        assert 0.0 <= split[score]["auroc"] <= 1.0 and 0.0 <= split[score]["fpr95"] <= 1.0
    assert "error" in summary["splits"]["bird-hunting_dog"]  # no hunting dogs in the folder
    assert summary["unreadable"] == 0


def test_ood_skips_an_unreadable_image_and_scores_the_rest(tmp_path, vocab, capsys):
    make_imagenet(tmp_path / "val", classes=("n02667093", "n02791124"), per_class=3)
    broken = sorted((tmp_path / "val" / "n02791124").iterdir())[0]  # a barber chair: the OOD side
    broken.write_bytes(b"\xff\xd8\xff not a whole JPEG")
    assert main(["eval", "ood", str(tmp_path / "val"), "--splits", "garment-furniture", "--json",
                 "--out", str(tmp_path / "out"), *TINY, *vocab]) == 0
    printed = capsys.readouterr()
    summary, split = json.loads(printed.out), json.loads(printed.out)["splits"]["garment-furniture"]
    assert split["id_images"] == 3 and split["ood_images"] == 2, "the broken chair is left out, not scored"
    assert summary["unreadable"] == 1 and broken.stem in summary["unreadable_images"][0]
    assert "1 unreadable images skipped" in printed.err
    assert len(rows(tmp_path / "out" / "ood_images.csv")) == 3, "one row per score, written"


def test_an_unreadable_image_is_skipped_counted_and_the_rows_written(tmp_path, vocab, capsys):
    root = make_cub(tmp_path / "cub", n=4)
    (root / "images" / "002.Bird_1" / "img_1.jpg").write_bytes(b"\xff\xd8\xff not a whole JPEG")
    out = tmp_path / "out"
    assert main(["eval", "wsol", str(root), "--methods", "grid", "--json", "--out", str(out), *TINY, *vocab]) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert summary["images"] == 3 and summary["unreadable"] == 1, summary
    assert summary["unreadable_images"][0].startswith("1: ")  # the image id, then why
    assert "1 unreadable images skipped" in printed.err
    assert len(rows(out / "wsol_images.csv")) == 3, "the readable images' rows are written"


def test_faithfulness_folder(tmp_path, vocab, capsys):
    for k in range(2):
        _image(tmp_path / "imgs" / f"{k}.png", size=(70, 50), seed=k)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n and then nothing")
    summary = run(["eval", "faithfulness", str(tmp_path / "imgs"), "--layout", "folder", "--concept", "dog",
                   "--steps", "4", "--methods", "grid,centre", "--json", *TINY, *vocab], capsys)
    assert summary["images"] == 2 and summary["steps"] == 4 and summary["unreadable"] == 1
    assert set(summary["methods"]) == {"grid", "centre"}
    assert summary["precision"] == "fp32", "int8 and fp32 share a model id: the summary says which ran"


def test_table_output_and_bad_method(tmp_path, vocab, capsys):
    root = make_cub(tmp_path / "cub", n=2)
    assert main(["eval", "wsol", str(root), "--methods", "grid", *TINY, *vocab]) == 0
    out = capsys.readouterr().out
    assert "MaxBoxAcc" in out and "grid" in out
    assert main(["eval", "wsol", str(root), "--methods", "gradcam", *TINY, *vocab]) == 2
    assert "unknown method" in capsys.readouterr().err

"""Dataset layouts of the harness, on tiny fixtures written by the tests."""

import json

import pytest

from convis.eval import datasets

from _datasets import VOC_XML, _image, make_cub, make_imagenet


def test_read_cub(tmp_path):
    samples = datasets.read_cub(make_cub(tmp_path))
    assert [s.image_id for s in samples] == ["1", "2", "3", "4"]
    assert samples[0].boxes() == [(10.0, 5.0, 40.5, 45.0)]  # (x, y, w, h) -> exclusive corners
    assert samples[0].label == "002.Bird_1" and samples[0].path.is_file()
    assert [s.image_id for s in datasets.read_cub(tmp_path, "test")] == ["2", "4"]
    assert [s.image_id for s in datasets.read_cub(tmp_path, "train")] == ["1", "3"]
    with pytest.raises(FileNotFoundError, match="CUB-200-2011 layout"):
        datasets.read_cub(tmp_path / "nothing")


def test_read_voc_one_based_boxes(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "000001.xml").write_text(VOC_XML.format(name="000001"))
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    for split in (None, "test"):
        (s,) = datasets.read_voc(tmp_path, split)
        assert s.boxes("dog") == [(10.0, 20.0, 50.0, 60.0)]  # 1-based inclusive -> 0-based exclusive
        assert s.path == tmp_path / "JPEGImages" / "000001.jpg"


def test_read_coco(tmp_path):
    data = {"images": [{"id": 7, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}],
            "annotations": [{"image_id": 7, "category_id": 1, "bbox": [1, 2, 10, 20]},
                            {"image_id": 7, "category_id": 2, "bbox": [0, 0, 0, 5]}],  # empty box dropped
            "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    (s,) = datasets.read_coco(tmp_path / "ann.json", tmp_path / "img")  # image 3 has no boxes: left out
    assert s.image_id == "7" and s.objects == (("dog", (1.0, 2.0, 11.0, 22.0)),)


def test_read_imagenet_with_xml_and_csv_boxes(tmp_path):
    stems = make_imagenet(tmp_path / "val")
    xml = tmp_path / "boxes" / "sub"
    xml.mkdir(parents=True)
    body = VOC_XML.replace("dog", "n01530575").replace("cat", "n99999999")
    (xml / f"{stems[0]}.xml").write_text(body.format(name=stems[0]))
    samples = datasets.read_imagenet(tmp_path / "val", tmp_path / "boxes")
    assert len(samples) == 4 and samples[0].label == "n01530575"
    assert samples[0].boxes() == [(11.0, 21.0, 51.0, 61.0)]  # own class only; ImageNet boxes are 0-based
    row = f"{stems[2]},n02085620 1 2 30 40 n02085620 5 5 9 9 \n"
    (tmp_path / "loc.csv").write_text("ImageId,PredictionString\n" + row)
    samples = datasets.read_imagenet(tmp_path / "val", tmp_path / "loc.csv")
    assert samples[2].boxes() == [(1.0, 2.0, 30.0, 40.0), (5.0, 5.0, 9.0, 9.0)]
    assert datasets.read_imagenet(tmp_path / "val")[0].objects == ()


def test_draw_is_seeded_and_keeps_file_order(tmp_path):
    samples = datasets.read_cub(make_cub(tmp_path, n=10))
    a, b = datasets.draw(samples, 4, seed=3), datasets.draw(samples, 4, seed=3)
    assert a == b and len(a) == 4
    assert [int(s.image_id) for s in a] == sorted(int(s.image_id) for s in a)
    assert datasets.draw(samples, None, 0) == samples and datasets.draw(samples, 99, 0) == samples


def test_first_per_class(tmp_path):
    make_imagenet(tmp_path / "val", per_class=3)
    got = datasets.first_per_class(datasets.read_imagenet(tmp_path / "val"), 2)
    assert [s.label for s in got] == ["n01530575"] * 2 + ["n02085620"] * 2

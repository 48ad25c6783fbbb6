"""Dataset layouts read from the user's own copies: CUB-200-2011, ImageNet-style folders, VOC, COCO.

Boxes are ``(x0, y0, x1, y1)`` floats in original image pixels with exclusive ends, the
convention of `convis.boxes`. Nothing is downloaded; missing files raise with the expected layout.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convis.errors import UserError
from convis.image import IMAGE_SUFFIXES, ImageError, load_image

FBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sample:
    """One image with its labelled boxes (class names as the dataset spells them)."""

    image_id: str
    path: Path
    objects: tuple[tuple[str, FBox], ...] = ()
    label: str = ""  # the image's class (its folder), "" when the layout has none

    def boxes(self, name: str | None = None) -> list[FBox]:
        """Boxes of one class (all boxes when `name` is None)."""
        return [b for n, b in self.objects if name is None or n == name]


class DataError(UserError, ValueError):
    """Bad evaluation input: an unknown split, method or option, a malformed annotation line."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A dataset file or folder the layout needs is missing; the message names the layout."""


def open_or_note(sample: Sample, unreadable: list[str]) -> object | None:
    """The sample's picture (a PIL image), or None after noting "<image id>: <why>" in `unreadable`:
    one damaged file in a dataset of thousands costs its own row, not the run's."""
    try:
        return load_image(sample.path)
    except ImageError as exc:
        unreadable.append(f"{sample.image_id}: {exc}")
        return None


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"{path} not found: {what}")
    return path


def read_cub(root: str | Path, split: str = "all") -> list[Sample]:
    """CUB-200-2011: `images.txt`, `bounding_boxes.txt` (x, y, w, h), `images/`, optional
    `train_test_split.txt` (needed for split "train" or "test")."""
    root = Path(root)
    layout = "expected the CUB-200-2011 layout (images.txt, bounding_boxes.txt, images/)"
    lines = _need(root / "images.txt", layout).read_text().splitlines()
    paths = dict(ln.split(maxsplit=1) for ln in lines if ln.strip())
    boxes: dict[str, list[FBox]] = defaultdict(list)
    for ln in _need(root / "bounding_boxes.txt", layout).read_text().splitlines():
        if ln.strip():
            i, x, y, w, h = ln.split()
            boxes[i].append((float(x), float(y), float(x) + float(w), float(y) + float(h)))
    keep = set(paths)
    if split != "all":
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; use all, train or test")
        lines = _need(root / "train_test_split.txt", "split 'train'/'test' needs it").read_text().split("\n")
        flags = dict(ln.split() for ln in lines if ln.strip())
        keep = {i for i, f in flags.items() if (f == "1") == (split == "train")}
    out = []
    for i, rel in paths.items():
        if i in keep:
            label = rel.strip().split("/")[0]
            out.append(Sample(i, root / "images" / rel.strip(), tuple((label, b) for b in boxes[i]), label))
    return sorted(out, key=lambda s: int(s.image_id) if s.image_id.isdigit() else s.image_id)


def read_voc_xml(path: Path, one_based: bool = True) -> tuple[str, list[tuple[str, FBox, bool]]]:
    """(filename, [(name, box, difficult)]) of a PASCAL VOC-style XML file.

    VOC boxes are 1-based with inclusive ends: (xmin - 1, ymin - 1, xmax, ymax) in our convention.
    """
    root = ET.parse(path).getroot()
    shift = 1.0 if one_based else 0.0
    objs = []
    for o in root.iter("object"):
        bb = o.find("bndbox")
        v = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        box = (v[0] - shift, v[1] - shift, v[2] + 1 - shift, v[3] + 1 - shift)
        objs.append((o.findtext("name", "").strip(), box, o.findtext("difficult", "0").strip() == "1"))
    return root.findtext("filename", path.stem + ".jpg").strip(), objs


def _imagenet_boxes(source: Path) -> dict[str, list[tuple[str, FBox]]]:
    """Image stem -> [(wnid, box)] from a folder of XML files or a LOC_val_solution.csv."""
    out: dict[str, list[tuple[str, FBox]]] = defaultdict(list)
    if source.is_dir():
        for xml in source.rglob("*.xml"):
            out[xml.stem] += [(n, b) for n, b, _ in read_voc_xml(xml, one_based=False)[1]]
    else:
        with open(_need(source, "give a folder of XML boxes or LOC_val_solution.csv"), newline="") as f:
            for row in csv.DictReader(f):
                parts = row["PredictionString"].split()
                for k in range(0, len(parts) - 4, 5):
                    out[row["ImageId"]].append((parts[k], tuple(float(v) for v in parts[k + 1:k + 5])))
    return out


def read_imagenet(root: str | Path, boxes: str | Path | None = None) -> list[Sample]:
    """ImageNet-style: `root/<class>/<image>` (class = WordNet id like n01530575 or any name).

    Args:
        root: folder of class folders.
        boxes: XML folder (ImageNet `Annotations/CLS-LOC/val`, any depth) or `LOC_val_solution.csv`;
            only boxes of the image's own class are kept. None: no boxes (OOD, faithfulness).
    """
    root = _need(Path(root), "expected a folder of class folders")
    table = _imagenet_boxes(Path(boxes)) if boxes is not None else {}
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in sorted(folder.iterdir()):
            if img.suffix.lower() in IMAGE_SUFFIXES:
                objs = tuple((n, b) for n, b in table.get(img.stem, []) if n == folder.name)
                out.append(Sample(img.stem, img, objs, folder.name))
    if not out:
        raise DataNotFoundError(f"no images in class folders under {root}")
    return out


def read_voc(root: str | Path, split: str | None = None) -> list[Sample]:
    """PASCAL VOC: `Annotations/*.xml`, `JPEGImages/`, optional `ImageSets/Main/<split>.txt`."""
    root = Path(root)
    ann = _need(root / "Annotations", "expected the VOC layout (Annotations/, JPEGImages/)")
    if split:
        ids = _need(root / "ImageSets" / "Main" / f"{split}.txt", "the split's id list").read_text().split()
        files = [ann / f"{i}.xml" for i in ids]
    else:
        files = sorted(ann.glob("*.xml"))
    out = []
    for xml in files:
        name, objs = read_voc_xml(xml)
        out.append(Sample(xml.stem, root / "JPEGImages" / name, tuple((n, b) for n, b, _ in objs)))
    return out


def read_coco(annotations: str | Path, images: str | Path) -> list[Sample]:
    """COCO detection JSON (`images`, `annotations` with bbox [x, y, w, h], `categories`)."""
    data = json.loads(_need(Path(annotations), "expected a COCO instances JSON file").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    objs: dict[int, list[tuple[str, FBox]]] = defaultdict(list)
    for a in data["annotations"]:
        x, y, w, h = (float(v) for v in a["bbox"])
        if w > 0 and h > 0:
            objs[a["image_id"]].append((names[a["category_id"]], (x, y, x + w, y + h)))
    return [Sample(str(im["id"]), Path(images) / im["file_name"], tuple(objs[im["id"]]))
            for im in sorted(data["images"], key=lambda im: im["id"]) if objs[im["id"]]]


def read_folder(root: str | Path) -> list[Sample]:
    """Every image file under a folder (no boxes, no labels)."""
    root = _need(Path(root), "expected a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [Sample(str(p.relative_to(root)), p) for p in files]


def draw(samples: Sequence[Sample], n: int | None, seed: int) -> list[Sample]:
    """`n` samples drawn without replacement with `seed` (all when n is None or >= len), in file order."""
    if n is None or n >= len(samples):
        return list(samples)
    pick = np.sort(np.random.default_rng(seed).choice(len(samples), size=n, replace=False))
    return [samples[i] for i in pick]


def first_per_class(samples: Sequence[Sample], n: int) -> list[Sample]:
    """The first `n` samples of each label, in order."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for s in samples:
        if seen[s.label] < n:
            seen[s.label] += 1
            out.append(s)
    return out

"""Tiny on-disk datasets in the layouts `convis.eval.datasets` reads (CUB, ImageNet, VOC XML)."""

import numpy as np
from PIL import Image

VOC_XML = """<annotation><filename>{name}.jpg</filename>
<object><name>dog</name><difficult>0</difficult>
  <bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
<object><name>cat</name><difficult>1</difficult>
  <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>
</annotation>"""


def _image(path, size=(80, 60), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_cub(root, n=4):
    """A CUB-200-2011 layout with `n` images of two classes (even ids are test images)."""
    lines, boxes, split = [], [], []
    for i in range(1, n + 1):
        rel = f"{1 + i % 2:03d}.Bird_{i % 2}/img_{i}.jpg"
        _image(root / "images" / rel, seed=i)
        lines.append(f"{i} {rel}")
        boxes.append(f"{i} 10.0 5.0 30.5 40.0")
        split.append(f"{i} {i % 2}")
    for name, body in (("images.txt", lines), ("bounding_boxes.txt", boxes), ("train_test_split.txt", split)):
        (root / name).write_text("\n".join(body) + "\n")
    return root


def make_imagenet(root, classes=("n01530575", "n02085620"), per_class=2):
    """Class folders of small JPEGs; returns the image stems."""
    stems = []
    for c in classes:
        for k in range(per_class):
            stem = f"ILSVRC2012_val_{c[-3:]}{k}"
            _image(root / c / f"{stem}.JPEG", seed=k)
            stems.append(stem)
    return stems

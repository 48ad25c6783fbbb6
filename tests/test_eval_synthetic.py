"""The synthetic world and its benchmark: seeded scenes, exact boxes, and the committed model's target."""

import json
import os

import numpy as np
import pytest

from convis.eval import shapes
from convis.eval.synthetic import scene_queries
from convis.concepts.hierarchy import toy_hierarchy
from convis.eval import ASSETS

WEIGHTS = ASSETS / "synthetic-shapes.safetensors"
needs_weights = pytest.mark.skipif(not os.path.isfile(WEIGHTS), reason="no synthetic-shapes weights")


def test_scenes_are_seeded():
    a, b = shapes.benchmark_scenes(4, seed=7), shapes.benchmark_scenes(4, seed=7)
    for s, t in zip(a, b):
        assert np.array_equal(s.image, t.image) and s.boxes == t.boxes and s.synsets == t.synsets
        assert s.image.shape == (224, 224, 3) and 1 <= len(s.synsets) <= 3
    assert not np.array_equal(a[0].image, shapes.benchmark_scenes(1, seed=8)[0].image)


@pytest.mark.parametrize("name", shapes.SHAPES)
def test_box_is_the_drawn_figure(name):
    """The box is read from the pixels the figure changed, not from its mask: the same background
    drawn alone (same seed) differs from the scene only on the figure and its 1-px soft rim."""
    for seed in range(3):
        scene = shapes.render_scene(np.random.default_rng(seed), [name])
        plain, _, _ = shapes.background(np.random.default_rng(seed))
        changed = (np.abs(scene.image.astype(float) - np.clip(np.rint(plain), 0, 255)) > 1).any(axis=2)  # (H, W)
        ys, xs = np.nonzero(changed)
        drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert np.abs(np.subtract(drawn, scene.boxes[0])).max() <= 1, (seed, drawn, scene.boxes[0])


def test_figures_do_not_overlap():
    for scene in shapes.benchmark_scenes(20, seed=1):
        total = scene.masks.sum(axis=0)
        assert total.max() <= 1


@pytest.mark.parametrize("name", shapes.SHAPES)
def test_every_figure_draws(name):
    scene = shapes.render_scene(np.random.default_rng(0), [name])
    assert scene.synsets == (name,) and scene.masks[0].sum() > 200


def test_unknown_figure():
    with pytest.raises(ValueError, match="no drawing"):
        shapes.render_scene(np.random.default_rng(0), ["dog.n.01"])


@pytest.mark.wordnet
def test_vocabulary_is_closed_under_hypernyms():
    h = shapes.shapes_hierarchy()
    assert h.vocabulary == "synthetic-shapes" and h.roots == ["entity.n.01"]
    assert set(shapes.listed_synsets()) <= set(h.ids)
    polygons = {h.ids[i] for i in h.subtree("polygon.n.01")}
    assert {"square.n.01", "rectangle.n.01", "rhombus.n.01", "triangle.n.01"} <= polygons
    assert not polygons & {"circle.n.01", "star.n.05", "spiral.n.01"}
    assert "circle.n.01" in {h.ids[i] for i in h.subtree("ellipse.n.01")}  # a circle is an ellipse


def test_scene_queries_use_the_subtree():
    h = toy_hierarchy({"ellipse.n.01": ["figure.n.01"], "circle.n.01": ["ellipse.n.01"],
                       "polygon.n.01": ["figure.n.01"], "square.n.01": ["polygon.n.01"]})
    scene = shapes.Scene(np.zeros((8, 8, 3), np.uint8), ("circle.n.01", "ellipse.n.01", "square.n.01"),
                         ((0, 0, 2, 2), (3, 3, 5, 5), (6, 6, 8, 8)), np.zeros((3, 8, 8), bool))
    got = {q: (kind, gts, d) for q, kind, gts, d in scene_queries(scene, h, hypernyms=("polygon.n.01",))}
    assert got["ellipse.n.01"] == ("leaf", [(0, 0, 2, 2), (3, 3, 5, 5)], True)  # the circle answers too
    assert got["circle.n.01"] == ("leaf", [(0, 0, 2, 2)], True)
    assert got["polygon.n.01"] == ("hypernym", [(6, 6, 8, 8)], True)


@pytest.mark.wordnet
@needs_weights
def test_synthetic_command_small(tmp_path, capsys):
    from convis.cli.commands import main

    assert main(["eval", "synthetic", "-n", "3", "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scenes"] == 3 and set(summary["methods"]) == {"grid", "raw", "dense", "centre"}
    assert (tmp_path / "synthetic_images.csv").is_file() and (tmp_path / "synthetic_summary.json").is_file()


@pytest.mark.slow
@pytest.mark.wordnet
@needs_weights
def test_synthetic_benchmark_meets_the_target(capsys):
    """The default benchmark (50 scenes, seed 0, 80 leaf queries) against the README's figures.

    The committed model scores 72/80 = 90.0 % pointing, the centre prior 32/80 = 40.0 %. The bar is
    stated with the headroom the model has: 85 % (four flipped queries on another CPU still pass)
    and 30 points over the centre prior; the README's figure itself is held to +-5 points.
    """
    from convis.cli.commands import main

    assert main(["eval", "synthetic", "--methods", "grid,centre", "--json"]) == 0
    figs = json.loads(capsys.readouterr().out)["methods"]
    convis, centre = figs["grid"]["pointing"], figs["centre"]["pointing"]
    assert convis >= 0.85 and convis >= centre + 0.30
    assert abs(convis - 0.90) <= 0.05, "the README's 90.0 % no longer holds: rerun and update it"
    assert centre == pytest.approx(32 / 80)  # the prior ignores the image: the same on every machine

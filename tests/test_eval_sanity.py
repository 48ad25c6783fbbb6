"""Sanity checks and multi-object pointing: the similarity measures against independent
computations, randomisation against torch's and open_clip's init rules, and small runs of both
commands on the shipped synthetic-shapes model (direction only, never exact figures)."""

import json
import os

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

from convis.boxes import pointing_hit
from convis.concepts.hierarchy import toy_hierarchy
from convis.eval import ASSETS
from convis.eval.multiobject import distinct_kinds, pointing_chance
from convis.eval.randomise import RandomiseError, block_seed, cascade, encoder_blocks, randomise_encoder
from convis.eval.similarity import average_ranks, gaussian_window, spearman, ssim

needs_weights = pytest.mark.skipif(not os.path.isfile(ASSETS / "synthetic-shapes.safetensors"),
                                   reason="no synthetic-shapes weights")


# ---- similarity -----------------------------------------------------------------------------
def test_ranks_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (12, 9)).astype(float)  # many ties
    b = a + rng.integers(0, 3, a.shape)
    assert np.array_equal(average_ranks(a), scipy.stats.rankdata(a.ravel()))
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(np.zeros((4, 4)), a[:4, :4]) == 0.0  # a flat map shares no order (scipy: NaN)


def _ssim_naive(x, y, size=11, sigma=1.5):
    """Wang et al. (2004), eq. 13-16 by hand: a loop over every place the window fits."""
    x, y = [(m - m.min()) / (m.max() - m.min()) for m in (x.astype(float), y.astype(float))]
    r = np.arange(size) - size // 2
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    w /= w.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_formula_by_hand_and_scipy_filters():
    rng = np.random.default_rng(1)
    x = scipy.ndimage.uniform_filter(rng.random((20, 23)), 3)
    y = 0.6 * x + 0.4 * rng.random(x.shape)
    assert ssim(x, y) == pytest.approx(_ssim_naive(x, y), abs=1e-10)
    # The window is scipy's Gaussian of sigma 1.5 truncated at radius 5.
    impulse = np.zeros(11)
    impulse[5] = 1
    assert np.allclose(gaussian_window(), scipy.ndimage.gaussian_filter1d(impulse, 1.5, truncate=5 / 1.5))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 3 * x + 2) == pytest.approx(1.0)  # maps are compared after min-max to [0, 1]
    assert ssim(x, 1 - x) < 0 < ssim(x, y) < 1


# ---- randomisation --------------------------------------------------------------------------
def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_randomise_is_pure_and_seeded(tiny_clip):
    model = tiny_clip.model
    before, rng = _state(model), torch.random.get_rng_state()
    names = encoder_blocks(model)
    assert names == ["head", "block1", "block0", "embed"]  # test-tiny: 2 residual blocks
    a = randomise_encoder(model, ["block1"], seed=3)
    assert a is not model and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(rng, torch.random.get_rng_state())
    b, c = randomise_encoder(model, ["block1"], seed=3), randomise_encoder(model, ["block1"], seed=4)
    w = "visual.transformer.resblocks.1.mlp.c_fc.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w]) and not torch.equal(a.state_dict()[w], c.state_dict()[w])
    changed = {k for k, v in a.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("visual.transformer.resblocks.1.") for k in changed)
    # A block draws the same weights alone and inside a cascade (its seed depends on its name only).
    full = randomise_encoder(model, cascade(names)[-1], seed=3)
    assert torch.equal(full.state_dict()[w], a.state_dict()[w])
    assert block_seed(3, "block1") != block_seed(3, "block0")
    text = [k for k in before if not k.startswith("visual.")]
    assert all(torch.equal(full.state_dict()[k], before[k]) for k in text)  # the text tower stays
    # Every image weight is redrawn; test-tiny is itself at init, so its constant ones (LayerNorm,
    # zeroed biases) come back equal.
    kept = {k for k, v in full.state_dict().items() if k.startswith("visual.") and torch.equal(v, before[k])}
    assert kept and all(torch.unique(before[k]).numel() == 1 for k in kept)


def test_randomised_weights_follow_the_init_rules(tiny_clip):
    """torch's Linear init is U(+-1/sqrt(fan_in)); MultiheadAttention zeroes both its biases (after
    its out-projection drew one); LayerNorm is (1, 0); the tower's proj is N(0, 1/width)."""
    new = randomise_encoder(tiny_clip.model, encoder_blocks(tiny_clip.model), seed=0).visual
    blk = new.transformer.resblocks[0]
    for lin in (blk.mlp.c_fc, blk.mlp.c_proj, blk.attn.out_proj):
        bound = 1 / np.sqrt(lin.in_features)
        assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(blk.attn.in_proj_bias) == 0 and torch.count_nonzero(blk.attn.out_proj.bias) == 0
    xavier = np.sqrt(6 / (64 + 3 * 64))  # in_proj (3E, E), E = 64
    assert blk.attn.in_proj_weight.abs().max() <= xavier
    assert torch.all(blk.ln_1.weight == 1) and torch.all(blk.ln_1.bias == 0)
    assert float(new.proj.detach().std()) == pytest.approx(64 ** -0.5, rel=0.1)  # 64 x 32 draws


def test_randomise_refuses_what_it_cannot_do(tiny_clip):
    with pytest.raises(RandomiseError, match="block7"):
        randomise_encoder(tiny_clip.model, ["block7"])
    with pytest.raises(RandomiseError, match="VisionTransformer"):
        randomise_encoder(torch.nn.Linear(2, 2), ["head"])


# ---- multi-object pieces --------------------------------------------------------------------
def test_pointing_chance_is_the_share_of_hitting_pixels():
    """Against the metric itself: a one-hot map at each pixel, hit or not."""
    side, boxes = 40, [(5, 6, 12, 20), (30, 2, 33, 4)]
    hits = 0
    for y in range(side):
        for x in range(side):
            m = np.zeros((side, side))
            m[y, x] = 1
            hits += pointing_hit(m, boxes, 3.5)
    assert pointing_chance(boxes, side, 3.5) == pytest.approx(hits / side ** 2)
    assert pointing_chance([(0, 0, 10, 10)], 20, 0) == pytest.approx(100 / 400)


def test_distinct_kinds_are_never_nested():
    h = toy_hierarchy({"ellipse.n.01": ["figure.n.01"], "circle.n.01": ["ellipse.n.01"],
                       "square.n.01": ["figure.n.01"], "star.n.05": ["figure.n.01"]})
    kinds = ("circle.n.01", "ellipse.n.01", "square.n.01", "star.n.05")
    rng = np.random.default_rng(0)
    draws = [set(distinct_kinds(rng, 3, h, kinds)) for _ in range(40)]
    assert all(len(d) == 3 and not {"circle.n.01", "ellipse.n.01"} <= d for d in draws)
    assert {frozenset(d) for d in draws} == {frozenset(kinds) - {"circle.n.01"}, frozenset(kinds) - {"ellipse.n.01"}}


# ---- the engines and the commands, on the shipped model ---------------------------------------
@pytest.mark.wordnet
@needs_weights
def test_permuted_and_randomised_engines_leave_the_trained_one_alone():
    from convis.engine import Engine
    from convis.eval.sanity import permuted_engine, randomised_engine

    engine = Engine.load("synthetic-shapes", vocabulary="synthetic-shapes", device="cpu")
    emb = engine.bank.embeddings.clone()
    perm = permuted_engine(engine, seed=0)
    order = np.random.default_rng(0).permutation(len(engine.hierarchy))  # the documented draw
    assert torch.equal(perm.bank.embeddings, emb[order]) and torch.equal(engine.bank.embeddings, emb)
    assert perm.clip is engine.clip and perm.hierarchy is engine.hierarchy
    rand = randomised_engine(engine, ["head"], seed=0)
    assert rand.clip.model is not engine.clip.model and rand.bank is engine.bank
    assert rand.clip.model_id != engine.clip.model_id and "head" in rand.clip.model_id


@pytest.mark.wordnet
@needs_weights
def test_sanity_command_small(tmp_path, capsys):
    """Three scenes, the top two blocks in cascade: the trained maps and the randomised ones
    differ, the centre prior (which ignores the model) does not, and the trained model points
    above chance."""
    from convis.cli.commands import main

    assert main(["eval", "sanity", "-n", "3", "--depth", "2", "--methods", "grid,centre", "--json",
                 "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in out["steps"]] == ["head", "head..block3", "glosses permuted", "unrelated maps"]
    assert out["steps"][1]["blocks"] == ["head", "block3"]
    for step in out["steps"]:
        assert step["methods"]["centre"]["spearman"] == pytest.approx(1.0)
        assert step["methods"]["grid"]["spearman"] < 0.95 and step["methods"]["grid"]["ssim"] < 0.95
    perm = out["permutation"]
    assert perm["methods"]["grid"]["trained"] > perm["chance"] + 0.2
    assert perm["methods"]["grid"]["permuted"] < perm["methods"]["grid"]["trained"]
    assert (tmp_path / "sanity_images.csv").is_file() and (tmp_path / "sanity_summary.json").is_file()


@pytest.mark.wordnet
@needs_weights
def test_multiobject_command_small(capsys):
    """Two scenes each of 1 and 2 figures: exactly k figures of distinct kinds, one query per
    figure, and the trained ConVis map points above chance."""
    from convis.cli.commands import main

    assert main(["eval", "synthetic", "--objects", "1,2", "-n", "2", "--methods", "grid,centre", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert set(counts) == {"1", "2"}
    assert counts["1"]["queries"] == 2 and counts["2"]["queries"] == 4  # one query per figure
    assert counts["2"]["one_in_k"] == 0.5
    hits = np.mean([counts[k]["methods"]["grid"] for k in counts])
    assert hits > max(c["chance"] for c in counts.values())


@pytest.mark.wordnet
def test_multiobject_scenes_hold_exactly_k_distinct_figures():
    from convis.eval.multiobject import multiobject_scenes
    from convis.eval.shapes import shapes_hierarchy

    h = shapes_hierarchy()
    a = multiobject_scenes([2, 4], 3, h, seed=5)
    b = multiobject_scenes([4], 3, h, seed=5)  # a count's scenes do not depend on the others asked
    for k, group in a.items():
        for scene in group:
            assert len(scene.synsets) == k == len(set(scene.synsets)) and scene.masks.sum(axis=0).max() <= 1
    assert all(np.array_equal(s.image, t.image) for s, t in zip(a[4], b[4]))


def test_bad_figure_counts_are_a_usage_error(capsys):
    from convis.cli.commands import main

    with pytest.raises(SystemExit):
        main(["eval", "synthetic", "--objects", "two"])
    assert "comma list of figure counts" in capsys.readouterr().err

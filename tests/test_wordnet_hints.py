"""Names in WordNet but not in T: say so, offer the nearest hypernym in T and the free-text map."""

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.wordnet
CAT = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "cat.jpg")


@pytest.fixture(scope="module")
def physical():
    from convis.concepts.wordnet import WordNetUnavailableError, load_hierarchy

    try:
        return load_hierarchy("physical")
    except WordNetUnavailableError as e:
        pytest.skip(f"WordNet not available: {e}")


def test_tabby_is_offered_its_nearest_hypernym_in_physical(physical):
    from convis.concepts.hints import suggest_in_vocabulary

    assert "tabby.n.01" not in physical and "domestic_cat.n.01" in physical
    assert suggest_in_vocabulary("tabby.n.01", physical) == "domestic_cat.n.01"  # WordNet: tabby -> domestic_cat
    assert suggest_in_vocabulary("tabby", physical) == "domestic_cat.n.01"
    assert suggest_in_vocabulary("dog", physical) is None  # in T already: dog.n.01
    assert suggest_in_vocabulary("dgo.n.01", physical) is None  # not WordNet: spelling is the help
    # An instance goes up through its instance hypernym (national_capital -> capital.n.03 -> city.n.01).
    assert suggest_in_vocabulary("Paris", physical) in {"capital.n.03", "city.n.01"}


def test_resolve_concept_puts_the_hint_before_the_spelling_suggestions(physical):
    from convis.concepts.hierarchy import UnknownConceptError
    from convis.concepts.hints import resolve_concept

    assert resolve_concept(physical, "dog") == "dog.n.01"
    with pytest.raises(UnknownConceptError) as err:
        resolve_concept(physical, "tabby.n.01")
    msg = str(err.value)
    assert "in WordNet but not in vocabulary 'physical'" in msg and "'domestic_cat.n.01'" in msg
    assert "free text ('tabby')" in msg and msg.index("domestic_cat") < msg.index("did you mean")
    assert err.value.hypernym == "domestic_cat.n.01" and err.value.phrase == "tabby"
    with pytest.raises(UnknownConceptError, match="did you mean") as err:
        resolve_concept(physical, "dgo.n.01")
    assert err.value.hypernym is None


def test_cli_maps_a_phrase(physical, tmp_path, capsys):
    from PIL import Image

    from convis.cli.commands import main

    out, npy = tmp_path / "x.png", tmp_path / "x.npy"
    assert main(["explain", CAT, "--text", "a red sports car", "--model", "test-tiny", "--out", str(out),
                 "--npy", str(npy), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["texts"] == ["a red sports car"] and summary["concepts"] == []
    assert Image.open(out).size == (300, 300) and np.load(npy).shape == (224, 224)
    grid = np.load(npy)
    assert main(["explain", CAT, "--text", "a red sports car", "--method", "raw", "--model", "test-tiny",
                 "--out", str(out), "--npy", str(npy), "--json"]) == 0
    raw = np.load(npy)
    assert json.loads(capsys.readouterr().out)["method"] == "raw"
    assert raw.shape == (224, 224) and raw.min() == 0.0 and raw.max() == 1.0 and not np.allclose(raw, grid)
    code = main(["explain", CAT, "--text", "a red sports car", "--method", "stochastic", "--model", "test-tiny",
                 "--out", str(out)])
    assert code == 2 and "grid, gamma or raw" in capsys.readouterr().err


def test_cli_says_what_to_do_for_a_name_outside_t(physical, tmp_path, capsys):
    from convis.cli.commands import main

    code = main(["explain", CAT, "--concept", "tabby.n.01", "--model", "test-tiny", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "domestic_cat.n.01" in err and "tabby" in err
    assert main(["explain", CAT, "--model", "test-tiny", "--out", str(tmp_path / "x.png")]) == 2
    assert "--text" in capsys.readouterr().err

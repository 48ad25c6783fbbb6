"""`convis eval ... --store`: stored window embeddings replace the window pass, same figures."""

import json

import pytest

from convis.cli.commands import main
from _datasets import make_cub

pytestmark = pytest.mark.wordnet
TINY = ["--model", "test-tiny", "--pretrained", "none", "--seed", "1"]


def test_wsol_with_a_store_gives_the_same_summary_with_no_window_pass(tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("bird\ndog\ncat\n")
    vocab = ["--vocabulary", f"wordlist:{words}"]
    root = make_cub(tmp_path / "cub", n=4)
    store = tmp_path / "store"
    assert main(["index", str(root / "images"), "--out", str(store), "--dtype", "float32", *TINY, *vocab]) == 0
    capsys.readouterr()
    argv = ["eval", "wsol", str(root), "-n", "3", "--methods", "grid,raw", "--json", *TINY, *vocab]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "--store", str(store)]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["store"]["from_store"] == 3 and stored["store"]["encoded"] == 0
    assert stored["methods"] == plain["methods"]
    # another noise seed made other windows: refused, naming the field
    assert main([*argv[:-6], "--model", "test-tiny", "--pretrained", "none", "--seed", "2", *vocab,
                 "--store", str(store)]) == 2
    assert "grid.seed: 1 vs 2" in capsys.readouterr().err

"""The concept set T: its hierarchy, and WordNet, the one door it is built through.

Pure: `hierarchy` (T as a DAG: names, glosses, subtrees, search, JSON), `dag` (walks over index
lists), `lookup` (names, offsets and lemmas to nodes, "did you mean"), `chains` (single-child
chains folded for display). Doors: `wordnet` (the vocabularies built from WordNet and their disk
cache), `nltk_data` (finds WordNet offline first; with `wordnet` the only user of nltk) and
`hints` (a WordNet name outside T: its nearest hypernym in T).
"""

from convis.concepts.hierarchy import Hierarchy, UnknownConceptError, toy_hierarchy

__all__ = ["Hierarchy", "UnknownConceptError", "toy_hierarchy"]

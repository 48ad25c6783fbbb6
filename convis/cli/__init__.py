"""The `convis` command line: `flags` (the engine flags every shell shares, the progress bar)
and `commands` (explain, top, concepts; bench and eval hang their sub-commands here).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `convis` console script; returns the exit status."""
    from convis.cli.commands import main as run

    return run(argv)

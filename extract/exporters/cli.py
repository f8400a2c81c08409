"""The ``ebmc-export`` command: write a store as an MMSA pickle or as CMU-SDK computational sequences."""
from __future__ import annotations

import sys
from typing import Sequence

from ebmc.extract.importers.cli import dispatch

COMMANDS = {
    "mmsa": ("ebmc.extract.exporters.mmsa", "an MMSA-style pickle (train/valid/test dicts of padded arrays)"),
    "csd": ("ebmc.extract.exporters.csd", "CMU-SDK computational sequences (.csd), labels and folds, via mmsdk"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ebmc-export``."""
    return dispatch("ebmc-export", "Export an ebmc feature store to the field's formats.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

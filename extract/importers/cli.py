"""The ``ebmc-import`` command: one subcommand per source, each loaded only when it is run.

Subcommand modules are listed here explicitly and expose ``add_arguments(parser)`` and
``run(args) -> int``. Each is imported lazily so that a missing optional library (mmsdk for
``csd``) breaks only its own subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ebmc.store import EbmcError

COMMANDS = {
    "mmsa": ("ebmc.extract.importers.mmsa", "MMSA aligned_50.pkl / unaligned_50.pkl (MOSI, MOSEI, SIMS, SIMSv2)"),
    "mult": ("ebmc.extract.importers.mult", "MulT pickles (mosi_data.pkl, mosei_senti_data.pkl, iemocap_data.pkl)"),
    "csd": ("ebmc.extract.importers.csd", "CMU-SDK computational sequences (.csd) with the standard folds"),
    "synthetic": ("ebmc.extract.importers.synthetic", "a generated dataset with a benchmark's shapes and a planted signal"),
    "arrays": ("ebmc.extract.importers.arrays", "plain arrays (.npy/.npz) with an utterance table"),
}


def dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]],
             argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` for ``prog``, import only the chosen subcommand's module and run it.

    Returns the exit code: the module's, 1 for an EbmcError (printed to stderr), 2 for a
    subcommand whose module cannot be imported.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help=", ".join(commands))
    chosen = argv[0] if argv and argv[0] in commands else None
    module = None
    for name, (module_name, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                missing = getattr(e, "name", None) or str(e)
                print(f"{prog} {name}: cannot load {module_name}: missing {missing}. "
                      "Install the extraction extra (pip install -e '.[extract]') or the named package.",
                      file=sys.stderr)
                return 2
            module.add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(module.run(args) or 0)
    except EbmcError as e:
        print(f"{prog} {args.command}: {e}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ebmc-import``."""
    return dispatch("ebmc-import", "Import published multimodal features into an ebmc feature store.",
                    COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

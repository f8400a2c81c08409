"""Importers: fill a feature store from the field's published features (MMSA, MulT, CMU-SDK) or generated data.

Each subcommand of ``ebmc-import`` lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; ``cli.py`` lists them. See ``docs/importers.md``.
"""

"""Exporters: write a feature store back out in the field's formats (MMSA pickle, CMU-SDK .csd).

Each subcommand of ``ebmc-export`` lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; ``cli.py`` lists them. See ``docs/importers.md``.
"""

"""Robustness protocols on trained runs (docs/protocols.md): masks, missing modalities, frame drops, contribution.

``run_protocols`` (in ``ebmc.train.protocols.run``) writes ``<run>/protocols/<name>.json``;
``ebmc.train.report`` turns those files into tables and figures.
"""

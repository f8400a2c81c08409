"""The feature store: the on-disk contract between extraction/import and training (schema v1).

Layout of one dataset (``features/<dataset>/``)::

    store.json                      commit point: schema version, task, labels, active feature sets
    utterances-<hash>.parquet       one row per utterance (id, split, labels, <m>_length, <m>_status)
    <modality>/<fingerprint>/       one committed feature set per modality and producer
        manifest.json               commit point of the feature set (written last)
        values.npy, offsets.npy | lengths.npy, status.npy, [timestamps.npy, frame_mask.npy, ...]

See ``features/README.md`` and ``docs/feature-store.md``.
"""
from .errors import ConfigError, EbmcError, StoreError
from .fingerprint import fingerprint, semantic_dict, setting
from .reader import FeatureSet, Store, open_store, read_manifest
from .schema import MODALITIES, SCHEMA_VERSION, SPLITS, TASKS
from .writer import ModalityData, commit_store, write_feature_set, write_store

__all__ = ["ConfigError", "EbmcError", "StoreError", "fingerprint", "semantic_dict", "setting", "FeatureSet",
           "Store", "open_store", "read_manifest", "MODALITIES", "SCHEMA_VERSION", "SPLITS", "TASKS", "ModalityData",
           "commit_store", "write_feature_set", "write_store"]

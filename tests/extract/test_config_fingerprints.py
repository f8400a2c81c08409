"""Every extractor config field is walked: semantic fields a backend reads change its fingerprint, all others do not."""
from __future__ import annotations

import dataclasses

import pytest

from ebmc.extract.asr import AsrConfig, asr_producer
from ebmc.extract.extractors import AudioConfig, TextConfig, VisionConfig, make_extractor
from ebmc.extract.extractors.vision_blendshapes import find_model
from ebmc.store import fingerprint

# One valid alternative value per field (the backend field is walked by choosing the backend).
# A new config field without an entry here fails test_every_field_has_an_alternative.
ALTERNATIVES = {
    AudioConfig: {"feature_set": "ComParE_2016", "level": "functionals", "sample_rate": 22050, "n_mfcc": 13,
                  "hop_ms": 20.0, "win_ms": 40.0, "fmin": 80.0, "fmax": 400.0, "silence_dbfs": -50.0},
    VisionConfig: {"fps": 5.0, "max_side": 320, "min_confidence": 0.7, "au_columns": True,
                   "model_path": str(find_model("")), "openface_dir": "/elsewhere/csvs"},
    TextConfig: {"max_tokens": 16, "pool": "words", "batch_size": 3, "threads": 1},  # model: see the text test below
}
BACKENDS = {
    AudioConfig: [("audio", {"backend": "opensmile"}), ("audio", {"backend": "librosa"})],
    VisionConfig: [("vision", {"backend": "blendshapes"}), ("vision", {"backend": "landmarks"}),
                   ("vision", {"backend": "pyfeat"}),
                   ("vision", {"backend": "openface", "openface_dir": "/data/csvs"})],
}


def _hashed(extractor, field: dataclasses.Field) -> bool:
    """Whether ``field`` should enter ``extractor``'s fingerprint."""
    if field.metadata.get("run_only"):
        return False
    return extractor.CONFIG_FIELDS is None or field.name in extractor.CONFIG_FIELDS


@pytest.mark.parametrize("cls", [AudioConfig, VisionConfig, TextConfig])
def test_every_field_has_an_alternative(cls):
    skip = {"backend", "model"}
    assert {f.name for f in dataclasses.fields(cls)} - skip == set(ALTERNATIVES[cls])


@pytest.mark.parametrize("cls", [AudioConfig, VisionConfig])
def test_backend_fingerprints_follow_exactly_the_fields_they_read(cls):
    read_by_some_backend = set()
    for modality, base_kwargs in BACKENDS[cls]:
        base = make_extractor(modality, cls(**base_kwargs))
        base_fp = fingerprint(base.producer())
        for f in dataclasses.fields(cls):
            if f.name == "backend":
                continue
            changed = make_extractor(modality, cls(**{**base_kwargs, f.name: ALTERNATIVES[cls][f.name]}))
            differs = fingerprint(changed.producer()) != base_fp
            assert differs == _hashed(base, f), (base_kwargs["backend"], f.name)
            if differs:
                read_by_some_backend.add(f.name)
    semantic = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("run_only")} - {"backend"}
    # a semantic field no backend hashes is either dead or missing from some CONFIG_FIELDS
    assert semantic == read_by_some_backend


def test_text_fingerprint_walks_every_field(tiny_bert):
    base_cfg = TextConfig(model=str(tiny_bert))
    base = make_extractor("text", base_cfg)
    base_fp = fingerprint(base.producer())
    for f in dataclasses.fields(TextConfig):
        value = "minilm" if f.name == "model" else ALTERNATIVES[TextConfig][f.name]
        changed = make_extractor("text", dataclasses.replace(base_cfg, **{f.name: value}))
        assert (fingerprint(changed.producer()) != base_fp) == _hashed(base, f), f.name


def test_producers_hold_no_paths(tiny_bert):
    producers = [make_extractor("text", TextConfig(model=str(tiny_bert))).producer()]
    producers += [make_extractor(m, cls(**kw)).producer() for cls, cases in BACKENDS.items() for m, kw in cases]
    for producer in producers:
        text = repr(producer)
        assert str(tiny_bert) not in text and "/data/csvs" not in text, producer["name"]
        assert str(find_model("")) not in text, producer["name"]


# mode picks which utterances are transcribed (it reaches the text features through their
# transcripts), device and threads are run-only: none changes what one transcription is.
ASR_ALTERNATIVES = {"mode": "always", "language": "de", "beam_size": 1, "vad": False, "compute_type": "float32",
                    "device": "cpu", "threads": 2}


def test_asr_fingerprint_walks_every_field(tmp_path):
    assert {f.name for f in dataclasses.fields(AsrConfig)} - {"model"} == set(ASR_ALTERNATIVES)
    base_fp = fingerprint(asr_producer(AsrConfig()))
    for name, value in ASR_ALTERNATIVES.items():
        changed = fingerprint(asr_producer(AsrConfig(**{name: value})))
        assert (changed != base_fp) == (name in ("language", "beam_size", "vad", "compute_type")), name
    # the model is identified by its content: a copy elsewhere hashes the same, a changed file does not
    from ebmc.extract.asr import resolve_model
    packaged, _ = resolve_model(AsrConfig().model)
    copy = tmp_path / "somewhere" / "tiny"
    copy.mkdir(parents=True)
    for f in packaged.iterdir():
        (copy / f.name).symlink_to(f)
    assert fingerprint(asr_producer(AsrConfig(model=str(copy)))) == base_fp
    assert str(copy) not in repr(asr_producer(AsrConfig(model=str(copy))))
    (copy / "config.json").unlink()
    (copy / "config.json").write_text((packaged / "config.json").read_text() + "\n")
    assert fingerprint(asr_producer(AsrConfig(model=str(copy)))) != base_fp

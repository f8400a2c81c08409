"""Word alignment on synthetic cases with known values: token pooling, span means with masked frames, aligned sets."""
from __future__ import annotations

import numpy as np

from ebmc.extract.align import aligned_data, pool_words, span_means
from ebmc.extract.extractors import TextConfig, make_extractor
from ebmc.extract.types import Result, Segment
from ebmc.store import ModalityData


def test_span_means_average_the_valid_frames_overlapping_each_word():
    # 10 frames of 0.1 s; frame k holds the values (k, 10k); frame 3 has no face
    values = np.stack([np.arange(10.0), 10 * np.arange(10.0)], axis=1)
    stamps = np.stack([np.arange(10) / 10, np.arange(1, 11) / 10], axis=1)
    mask = np.ones(10, bool)
    mask[3] = False
    words = np.array([[0.0, 0.2], [0.25, 0.45], [0.31, 0.39], [0.95, 1.0], [2.0, 2.5]])
    means, valid = span_means(values, stamps, mask, words)
    np.testing.assert_allclose(means[0], [0.5, 5.0])      # frames 0, 1
    np.testing.assert_allclose(means[1], [3.0, 30.0])     # frames 2, 4 (3 masked)
    np.testing.assert_allclose(means[2], [0.0, 0.0])      # only frame 3, masked: no valid frame
    np.testing.assert_allclose(means[3], [9.0, 90.0])     # frame 9
    np.testing.assert_allclose(means[4], [0.0, 0.0])      # after the last frame
    assert valid.tolist() == [True, True, False, True, False]


def test_pool_words_means_sub_word_tokens_and_skips_special_tokens():
    states = np.array([[100.0], [1.0], [3.0], [5.0], [7.0], [100.0]])
    means, valid = pool_words(states, np.array([-1, 0, 0, 1, 1, -1]), 3)
    np.testing.assert_allclose(means[:, 0], [2.0, 6.0, 0.0])
    assert valid.tolist() == [True, True, False]  # word 2 was cut off by the token limit


def _asr(times: list[list[float]], words: list[str]) -> Result:
    return Result(values=np.ones((len(words), 1)), timestamps=np.array(times), extras={"words": np.array(words)})


def test_aligned_sets_have_one_row_per_word_in_every_modality():
    words = [_asr([[0.0, 0.2], [0.2, 0.4]], ["good", "film"]), None]
    audio = ModalityData(producer={"name": "a"}, status=["ok", "ok"],
                         sequences=[np.arange(8.0)[:, None], np.zeros((3, 1))],
                         extras={"timestamps": [np.stack([np.arange(8) / 20, np.arange(1, 9) / 20], 1), np.zeros((3, 2))]})
    out = aligned_data("audio", audio, words, "asr-hash")
    np.testing.assert_allclose(out.sequences[0][:, 0], [1.5, 5.5])  # frames 0-3 and 4-7
    assert out.status == ["ok", "absent"] and out.sequences[1] is None  # a given transcript has no word times
    assert out.extras["words"][0].tolist() == ["good", "film"]
    np.testing.assert_array_equal(out.extras["timestamps"][0], words[0].timestamps)
    assert out.producer["features"] == audio.producer and out.producer["words"] == "asr-hash"

    text = ModalityData(producer={"name": "t"}, status=["ok", "failed"], sequences=[np.arange(4.0)[:, None], None],
                        extras={"word_ids": [np.array([-1, 0, 1, 1]), None]})
    out = aligned_data("text", text, words, "asr-hash")
    np.testing.assert_allclose(out.sequences[0][:, 0], [1.0, 2.5])
    assert out.status == ["ok", "failed"]


def test_text_pool_words_is_the_mean_of_each_words_token_states(tiny_bert):
    seg = Segment("u", None, None, None, "unbelievably good, really")
    tokens = make_extractor("text", TextConfig(model=str(tiny_bert))).extract(seg)
    words = make_extractor("text", TextConfig(model=str(tiny_bert), pool="words")).extract(seg)
    ids = tokens.extras["word_ids"]
    assert ids[0] == -1 and ids[-1] == -1 and sorted(set(ids[1:-1])) == [0, 1, 2]
    assert words.extras["words"].tolist() == ["unbelievably", "good,", "really"]
    assert words.values.shape == (3, tokens.values.shape[1])
    for w in range(3):
        np.testing.assert_allclose(words.values[w], tokens.values[ids == w].mean(axis=0), rtol=1e-5, atol=1e-6)

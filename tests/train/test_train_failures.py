"""Issue 14, finding 8 (training): a CUDA device that is not there, a diverged loss, a class unseen in train."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from ebmc.store import ModalityData, write_store
from ebmc.train.cli import main

from test_train_cli import TINY  # noqa: F401 - the store fixture comes from there too
from test_train_cli import store  # noqa: F401


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_a_clean_exit_2(store, tmp_path, capsys):  # noqa: F811
    assert main([str(store), "--out", str(tmp_path / "runs"), "--seeds", "1", *TINY, "--train.device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device is visible" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_diverged_loss_stops_the_run_marked_failed_with_exit_1(store, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "runs"
    assert main([str(store), "--out", str(out), "--seeds", "1", *TINY, "--train.lr", "1e30",
                 "--train.grad_clip", "0"]) == 1
    err = capsys.readouterr().err
    failed = json.loads(next(out.rglob("failed.json")).read_text())
    assert failed["stage"] in (1, 2) and failed["epoch"] >= 1
    assert f"stage {failed['stage']} epoch {failed['epoch']}: the training loss is nan" in err
    assert not list(out.rglob("metrics.json")) and "lower --train.lr" in err


def test_a_class_missing_from_train_is_warned_about(tmp_path, caplog):
    n = 12
    table = pd.DataFrame({"utterance_id": [f"u{i}" for i in range(n)],
                          "split": ["train"] * 6 + ["valid"] * 3 + ["test"] * 3,
                          "label": [0, 1, 0, 1, 0, 1, 2, 0, 1, 2, 0, 1]})
    seqs = [np.ones((3, 2), np.float32)] * n
    with caplog.at_level(logging.WARNING):
        write_store(tmp_path / "s", dataset="s", task="classification", utterances=table, classes=["a", "b", "c"],
                    features={"audio": ModalityData({"name": "a"}, sequences=seqs)})
    assert "no train utterance has class 'c'" in caplog.text
    assert "class 'a'" not in caplog.text and "class 'b'" not in caplog.text

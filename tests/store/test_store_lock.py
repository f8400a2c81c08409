"""Issue 14, finding 2: one writer per store (a lock naming its holder), cleanup of dead writers' files only."""
import multiprocessing
import socket
import subprocess
import sys

import pytest
from ebmc.store import ModalityData, StoreError, atomic, open_store, write_store
from ebmc.store.lock import LOCK_FILE, store_lock
from test_store import ragged, table


def _write(root, seed):
    write_store(root, dataset="d", task="regression", utterances=table(note=[f"seed {seed}"] * 9),  # a table per seed
                features={"audio": ModalityData({"name": "a", "seed": seed}, sequences=ragged(seed=seed))})


HOLD = ("import sys, time; from ebmc.store.lock import store_lock\n"
        "with store_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")


def test_a_second_writer_is_refused_with_the_holders_pid_host_and_time(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"locked by pid {holder.pid} on host {socket.gethostname()} since 20"):
            _write(tmp_path, 0)
        assert not (tmp_path / "store.json").exists()
    finally:
        holder.kill()
        holder.wait()
    _write(tmp_path, 0)  # the kernel released the dead holder's lock: the stale lock is taken over
    assert open_store(tmp_path).n == 9
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released cleanly


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with store_lock(tmp_path):
        _write(tmp_path, 0)  # write_store, write_feature_set and commit_store take it again
    assert open_store(tmp_path).n == 9


def test_stale_temps_of_dead_writers_go_and_live_writers_temps_stay(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_tmp = tmp_path / f".tmp-values.npy-{sleeper.pid}-0123abcd"
        dead_tmp = tmp_path / f".tmp-values.npy-{dead.pid}-0123abcd"
        live_tmp.write_bytes(b"in progress")
        dead_tmp.mkdir()
        atomic.remove_stale_temps(tmp_path)
        assert live_tmp.exists() and not dead_tmp.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _race(root, seeds, results):
    for seed in seeds:
        try:
            _write(root, seed)
            results.put("ok")
        except StoreError as e:
            results.put("locked" if "locked by pid" in str(e) else str(e))
        except Exception as e:  # noqa: BLE001 - any other error is the failure under test
            results.put(f"{type(e).__name__}: {e}")


def test_concurrent_writers_never_break_each_other_nor_a_reader(tmp_path):
    _write(tmp_path, 100)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose libraries run threads
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path, range(k * 10, k * 10 + 6), results)) for k in range(2)]
    for p in procs:
        p.start()
    opened = 0
    while any(p.is_alive() for p in procs):  # a reader during the race always sees a whole commit
        store = open_store(tmp_path)
        assert len(store.utterances) == 9 and store.features("audio").padded()[0].shape[0] == 9
        opened += 1
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in range(12)]
    assert set(outcomes) <= {"ok", "locked"} and "ok" in outcomes, outcomes
    assert opened and open_store(tmp_path).n == 9
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_commit_keeps_the_table_a_reader_may_have_just_been_pointed_to(tmp_path):
    _write(tmp_path, 0)
    opened = open_store(tmp_path)
    _write(tmp_path, 1)
    assert len(list(tmp_path.glob("utterances-*.parquet"))) == 2  # the previous commit's table stays
    _write(tmp_path, 2)
    assert len(list(tmp_path.glob("utterances-*.parquet"))) == 2  # older ones go
    assert opened.utterances["note"].tolist() == ["seed 0"] * 9  # read at open: independent of later commits

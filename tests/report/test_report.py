"""The report rebuilt from the golden result files equals the golden report.md; figures are valid PNGs."""
import json
import shutil
from pathlib import Path

import matplotlib.image
import pytest

from ebmc.store import StoreError
from ebmc.train.report.build import build_report
from ebmc.train.report.cli import main
from ebmc.train.report.collect import collect
from ebmc.train.report.tables import cell, mean_std, table3, table5

GOLDEN = Path(__file__).parent / "golden"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(GOLDEN / "runs", out)


def test_report_equals_golden(built):
    assert built.read_text() == (GOLDEN / "report.md").read_text()


def test_every_figure_is_a_valid_png(built):
    linked = [line.split("(")[1].rstrip(")") for line in built.read_text().splitlines() if line.startswith("![")]
    assert len(linked) == 6
    for name in linked:
        data = (built.parent / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        image = matplotlib.image.imread(built.parent / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_averages_over_rates_and_seeds_match_the_hand_written_files():
    groups = [g for g in collect([GOLDEN / "runs"]) if g.ablation == "full"]
    # Table 3 Avg.: per seed the mean of six conditions (3.92/6 and 3.96/6), then over two seeds
    avg = table3(groups, False).splitlines()[2].split(" | ")[-1].rstrip(" |")
    assert avg == f"{(3.92 / 6 + 3.96 / 6) / 2 * 100:.2f} ± {abs(3.96 / 6 - 3.92 / 6) / 2 ** 0.5 * 100:.2f}"
    # Table 5 MAE: rates 0 and 0.5 give (0.90 + 1.10) / 2 and (0.86 + 1.00) / 2
    mae = table5(groups, False).splitlines()[2].split(" | ")[-1].rstrip(" |")
    assert mae == "0.965 ± 0.049"


def test_mean_std_is_the_sample_std_and_keeps_nan():
    assert mean_std([1.0, 3.0]) == (2.0, 2 ** 0.5, 2)
    assert cell("mae", [0.5]) == "0.500"
    assert cell("corr", [0.5, float("nan")]).startswith("nan")
    assert cell("acc7", []) == "–"


def test_comparison_mode_puts_both_folders_in_one_table(tmp_path):
    for name in ("ebmc_a", "ebmc_b"):
        shutil.copytree(GOLDEN / "runs", tmp_path / name)
    f = tmp_path / "ebmc_b" / "mosi" / "full" / "seed-1111" / "protocols" / "full.json"
    raw = json.loads(f.read_text())
    raw["metrics"]["mae"] = 0.5
    f.write_text(json.dumps(raw))
    assert main([str(tmp_path / "ebmc_a"), str(tmp_path / "ebmc_b"), "--out", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "report.md").read_text()
    assert "| EBMC [ebmc_a] | 2 |" in text and "| EBMC [ebmc_b] | 2 |" in text
    assert "0.880 ± 0.028" in text and "0.680 ± 0.255" in text  # b: mean(0.5, 0.86), std 0.2546
    assert (tmp_path / "cmp" / "fig7_missing_rate_mosi.png").read_bytes()[:8] == PNG_SIGNATURE


def test_unusable_folders_are_listed_together(tmp_path):
    bad = tmp_path / "runs" / "mosi" / "full" / "seed-1"
    (bad / "protocols").mkdir(parents=True)
    (bad / "protocols" / "full.json").write_text("{not json")
    with pytest.raises(StoreError) as err:
        build_report([tmp_path / "runs", tmp_path / "nowhere"], tmp_path / "out")
    text = str(err.value)
    assert "config.json: missing" in text and "not valid JSON" in text and "nowhere: not a folder" in text
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2

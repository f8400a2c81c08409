"""Reading result files: every run under one or more runs folders, grouped by (folder, dataset, ablation) over seeds."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path

from ebmc.store import StoreError

from ..ablations import ABLATIONS

SEED_DIR = re.compile(r"^seed-(\d+)$")  # ebmc.train.runs.run_dir


@dataclasses.dataclass
class Run:
    """One seed's result files: config.json (``{"config": RunConfig dict, ...}``), history.csv rows and
    protocols/<name>.json."""

    path: Path
    seed: int
    config: dict
    history: list[dict]
    protocols: dict[str, dict]


@dataclasses.dataclass
class RunGroup:
    """The seeds of one (runs folder, dataset, ablation); ``source`` labels the folder in comparisons."""

    source: str
    dataset: str
    ablation: str
    runs: list[Run]

    @property
    def task(self) -> str | None:
        for run in self.runs:
            for result in run.protocols.values():
                return result.get("task")
        return None

    def results(self, protocol: str) -> list[dict]:
        """This protocol's result of each seed that has one, in seed order."""
        return [r.protocols[protocol] for r in self.runs if protocol in r.protocols]


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_history(path: Path) -> list[dict]:
    """history.csv as rows of numbers (empty cells -> NaN)."""
    with open(path, newline="") as f:
        return [{k: (_number(v) if v != "" else math.nan) for k, v in row.items()} for row in csv.DictReader(f)]


def read_run(path: Path) -> Run:
    problems = []
    config = {}
    if (path / "config.json").exists():
        config = json.loads((path / "config.json").read_text())
    else:
        problems.append(f"{path / 'config.json'}: missing; the run was not finished (rerun ebmc-train)")
    protocols = {}
    for f in sorted((path / "protocols").glob("*.json")):
        try:
            protocols[f.stem] = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{f}: not valid JSON ({e}); rerun ebmc-train --protocols {f.stem}")
    if problems:
        raise StoreError(f"run {path} is unusable", problems)
    history = read_history(path / "history.csv") if (path / "history.csv").exists() else []
    return Run(path, int(SEED_DIR.match(path.name).group(1)), config, history, protocols)


def source_labels(roots: list[Path]) -> list[str]:
    """Short labels of the runs folders: their names, or their paths as given when names repeat."""
    names = [r.resolve().name for r in roots]
    return names if len(set(names)) == len(names) else [str(r) for r in roots]


def collect(roots: list[str | Path]) -> list[RunGroup]:
    """Every run ``<root>/<dataset>/<ablation>/seed-<N>/`` of every root, grouped over seeds.

    Groups keep the order of ``roots``, then datasets sorted, the full model first, the paper's ablations
    in their order, other overrides by name; runs sorted by seed.
    Raises one StoreError listing every unusable run or folder.
    """
    roots = [Path(r) for r in roots]
    problems = [f"{r}: not a folder; pass a folder made by ebmc-train --out" for r in roots if not r.is_dir()]
    groups: list[RunGroup] = []
    for root, label in zip(roots, source_labels(roots)):
        if not root.is_dir():
            continue
        seed_dirs = sorted(p for p in root.glob("*/*/seed-*") if p.is_dir() and SEED_DIR.match(p.name))
        if not seed_dirs:
            problems.append(f"{root}: no runs (<dataset>/<ablation>/seed-<N>/ folders); train with ebmc-train --out {root}")
        by_key: dict[tuple[str, str], list[Run]] = {}
        for p in seed_dirs:
            try:
                by_key.setdefault((p.parent.parent.name, p.parent.name), []).append(read_run(p))
            except StoreError as e:
                problems.extend(e.problems)
        # the full model first, then the paper's ablations in their order, then other overrides by name
        rank = lambda key: (key[0], list(ABLATIONS).index(key[1]) if key[1] in ABLATIONS else len(ABLATIONS), key[1])  # noqa: E731
        for (dataset, ablation), runs in sorted(by_key.items(), key=lambda kv: rank(kv[0])):
            groups.append(RunGroup(label, dataset, ablation, sorted(runs, key=lambda r: r.seed)))
    if problems:
        raise StoreError("cannot build the report", problems)
    return groups

"""Named config overrides: the paper's ablations (Table 4, Table 7) and loss-weight sweeps (Fig. 6)."""
from __future__ import annotations

import dataclasses
import math

from ebmc.store.errors import ConfigError
from ebmc.train.config import RunConfig

# name -> {section: {field: value}}, applied on top of the user's config.
ABLATIONS: dict[str, dict[str, dict]] = {
    "full": {},
    "no_msd": {"model": {"use_msd": False}},
    "no_cce": {"model": {"use_cce": False}},
    "no_emc": {"model": {"use_emc": False}},
    # Sec. 4.3 ties the adaptive (trust) weighting of modalities to IMTD: w/o IMTD loses both
    "no_imtd": {"model": {"use_imtd": False, "trust_fusion": False}},
    "emc_no_norm": {"model": {"emc_a": 0.0}},
    "emc_no_task": {"model": {"emc_b": 0.0}},
    "emc_no_uncertainty": {"model": {"emc_c": 0.0}},
    # The training setup of the paper's Table 5 models (LNLN's): augmented, selected at drop rate 0.5
    "table5": {"train": {"robust_augment": True, "augment_scheme": "lnln", "select_drop_rate": 0.5}},
}

# How the paper's tables name each ablation.
LABELS: dict[str, str] = {
    "full": "EBMC", "no_msd": "w/o MSD", "no_cce": "w/o CCE", "no_emc": "w/o EMC", "no_imtd": "w/o IMTD",
    "emc_no_norm": "w/o ||z_m||^2", "emc_no_task": "w/o l_m", "emc_no_uncertainty": "w/o u_m",
    "table5": "EBMC (Table 5 training)",
}

# The rows of the paper's ablation tables: Table 4 (modules) and Table 7 (EMC energy terms).
MODULE_ABLATIONS = ("full", "no_msd", "no_cce", "no_emc", "no_imtd")
EMC_ABLATIONS = ("full", "emc_no_norm", "emc_no_task", "emc_no_uncertainty")

# Sensitivity study (Fig. 6): an override "<weight>=<value>" sets loss.<weight>. The paper does not
# list its grid; the "sensitivity" preset is ours: every weight at each of SWEEP_VALUES.
SWEEP_WEIGHTS = ("beta", "gamma", "eta", "zeta")
SWEEP_VALUES = (0.01, 0.05, 0.1, 0.5, 1.0)
PRESETS: dict[str, tuple[str, ...]] = {
    "sensitivity": tuple(f"{w}={v:g}" for w in SWEEP_WEIGHTS for v in SWEEP_VALUES),
}


def _sweep(name: str) -> tuple[str, float] | None:
    """(weight, value) of a "<weight>=<value>" name with a finite value >= 0, else None."""
    weight, sep, text = name.partition("=")
    if not sep or weight not in SWEEP_WEIGHTS:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return (weight, value) if math.isfinite(value) and value >= 0 else None


def canonical(name: str) -> str:
    """The folder name of an override: sweep values written in one way ("beta=.050" -> "beta=0.05")."""
    sweep = _sweep(name)
    return name if sweep is None else f"{sweep[0]}={sweep[1]:g}"


def expand_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Presets expanded, sweep names made canonical, duplicates dropped (first kept).

    Raises one ConfigError (a ValueError) naming every unknown name and listing the valid forms.
    """
    unknown = [n for n in names if n not in ABLATIONS and n not in PRESETS and _sweep(n) is None]
    if unknown:
        raise ConfigError(f"unknown ablation{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"valid: {' '.join(ABLATIONS)}, a preset ({' '.join(PRESETS)}) or <weight>=<value> "
                          f"with weight one of {' '.join(SWEEP_WEIGHTS)} and a value >= 0 (e.g. beta=0.05)")
    expanded = [m for n in names for m in PRESETS.get(n, (n,))]
    return list(dict.fromkeys(canonical(n) for n in expanded))


def apply_ablation(cfg: RunConfig, name: str) -> RunConfig:
    """``cfg`` with override ``name`` applied and ``ablation`` set to its canonical name."""
    if name in PRESETS:
        raise ValueError(f"{name!r} is a preset of several runs: expand it with expand_names first")
    (name,) = expand_names([name])
    sweep = _sweep(name)
    overrides = {"loss": {sweep[0]: sweep[1]}} if sweep else ABLATIONS[name]
    sections = {section: dataclasses.replace(getattr(cfg, section), **fields)
                for section, fields in overrides.items()}
    return dataclasses.replace(cfg, ablation=name, **sections)


def _value(value: object) -> str:
    """A setting's value as written on the command line (false, 0.0, 0.05)."""
    return str(value).lower() if isinstance(value, bool) else f"{value!r}"


def ablation_table() -> str:
    """The markdown table of every named override and the exact settings it changes; docs/training.md
    holds it (tests/train/test_ablations.py checks that it is up to date)."""
    rows = ["| name | paper | settings it changes |", "|---|---|---|"]
    for name, sections in ABLATIONS.items():
        changes = ", ".join(f"`{section}.{field} = {_value(value)}`"
                            for section, fields in sections.items() for field, value in fields.items())
        label = LABELS[name].replace("|", "\\|")  # a pipe would end the table cell
        rows.append(f"| `{name}` | {label} | {changes or 'none'} |")
    return "\n".join(rows)


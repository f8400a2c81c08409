"""The paper's ablations (Table 4: modules, Table 7: EMC energy terms) as named config overrides."""
from __future__ import annotations

import dataclasses

from ebmc.train.config import RunConfig

# name -> {section: {field: value}}, applied on top of the user's config.
ABLATIONS: dict[str, dict[str, dict]] = {
    "full": {},
    "no_msd": {"model": {"use_msd": False}},
    "no_cce": {"model": {"use_cce": False}},
    "no_emc": {"model": {"use_emc": False}},
    "no_imtd": {"model": {"use_imtd": False}},
    "emc_no_norm": {"model": {"emc_a": 0.0}},
    "emc_no_task": {"model": {"emc_b": 0.0}},
    "emc_no_uncertainty": {"model": {"emc_c": 0.0}},
}

# How the paper's tables name each ablation.
LABELS: dict[str, str] = {
    "full": "EBMC", "no_msd": "w/o MSD", "no_cce": "w/o CCE", "no_emc": "w/o EMC", "no_imtd": "w/o IMTD",
    "emc_no_norm": "w/o ||z_m||^2", "emc_no_task": "w/o l_m", "emc_no_uncertainty": "w/o u_m",
}


def check_names(names: list[str] | tuple[str, ...]) -> None:
    """Raise one ValueError naming every unknown ablation and listing the valid ones."""
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"valid: {' '.join(ABLATIONS)}")


def apply_ablation(cfg: RunConfig, name: str) -> RunConfig:
    """``cfg`` with ablation ``name``'s overrides applied and ``ablation`` set to ``name``."""
    check_names([name])
    sections = {section: dataclasses.replace(getattr(cfg, section), **fields)
                for section, fields in ABLATIONS[name].items()}
    return dataclasses.replace(cfg, ablation=name, **sections)

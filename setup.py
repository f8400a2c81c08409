"""Package map: the repo's top-level folders become the one namespace ``ebmc.*``."""
from setuptools import find_packages, setup

ROOTS = {"ebmc.store": "store", "ebmc.extract": "extract", "ebmc.train": "train"}

setup(
    package_dir={**ROOTS, "ebmc.manifests": "manifests"},
    packages=[sub for name, folder in ROOTS.items()
              for sub in [name] + [f"{name}.{p}" for p in find_packages(folder)]] + ["ebmc.manifests"],
    # the standard CMU-MOSI / MOSEI folds travel with the package (ebmc-import csd --folds mosi)
    package_data={"ebmc.manifests": ["folds/*.json", "folds/README.md", "README.md"]},
)

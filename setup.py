"""Package map: the repo's top-level source folders become the one namespace ``ebmc.*``."""
from setuptools import find_packages, setup

ROOTS = {"ebmc.store": "store", "ebmc.extract": "extract", "ebmc.train": "train"}

setup(
    package_dir=ROOTS,
    packages=[sub for name, folder in ROOTS.items()
              for sub in [name] + [f"{name}.{p}" for p in find_packages(folder)]],
)

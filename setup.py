"""Only the package list, which pyproject.toml cannot express; everything else is there.

Every package under gateway/ (as `packages.find` would list them), plus `gateway.policies`,
which package-dir maps to the repository's top-level policies/ directory.
"""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["gateway*"]), "gateway.policies"])

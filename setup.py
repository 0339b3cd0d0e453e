"""Installs the recsys library, the pipelines entry points and the configs.

Dependencies are pinned exactly in requirements.txt; `make install` installs those first, then this
package in editable mode without touching them.
"""
from setuptools import find_packages, setup

setup(
    name="recsys-smelu",
    version="0.1.0",
    description=(
        "Reproducible CTR models with smooth activations (SmeLU, gSmeLU, RESCU): preprocessing, "
        "online training with progressive validation, prediction-difference comparison and serving."
    ),
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["recsys", "recsys.*", "pipelines", "pipelines.*", "configs", "configs.*"]),
    install_requires=[],
)

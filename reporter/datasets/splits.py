"""The one patient-level split every area uses (train / finetune / eval).

A patient's split is a pure function of its id: sha256 of ``"spine-reporter-split-v1:" + id``,
read as a number in [0, 1). Below 0.70 -> train, below 0.85 -> val, else test. Because it depends
on nothing but the id, it is stable across datasets, machines and runs, a patient can never land in
two splits, and adding patients never moves existing ones. Metrics called "held-out" in this
project are computed on the ``test`` split; ``val`` is for model selection and early stopping.
Do not change the salt or the fractions: every reported number depends on them.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
SPLIT_SALT = "spine-reporter-split-v1"
TRAIN_FRACTION = 0.70
VAL_FRACTION = 0.15  # the rest (0.15) is test


def split_score(patient_id: str) -> float:
    """The patient's position in [0, 1) that decides its split."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(patient_id: str | int) -> Split:
    """``"train"``, ``"val"`` or ``"test"`` for a patient id (the same answer forever)."""
    pid = str(patient_id).strip()
    if not pid:
        raise ValueError("Argument 'patient_id' must be a non-empty id.")
    score = split_score(pid)
    if score < TRAIN_FRACTION:
        return "train"
    if score < TRAIN_FRACTION + VAL_FRACTION:
        return "val"
    return "test"

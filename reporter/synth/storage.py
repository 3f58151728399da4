"""Writing and reading phantom studies: DICOM, findings.json, meta.json, label maps (NIfTI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError, InputMissingError, OutputError
from reporter.geometry import lps_to_nifti_affine, nifti_to_lps_affine
from reporter.synth.instances import dicom_datasets
from reporter.synth.phantom import Phantom

FORMATS = ("dicom", "rsna2024")


def label_key(series: Series) -> str:
    return series.role if series.role != "ax_t2" else f"ax_t2_{series.stack_index}"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """JSON has no infinity: write it as null."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def meta_json(meta: dict[str, Any]) -> str:
    return json.dumps(_clean(meta), indent=2, sort_keys=True, default=_json_default) + "\n"


def write_nifti(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(np.asarray(labels, dtype=np.int16), lps_to_nifti_affine(affine))
    img.header.set_xyzt_units("mm")
    data = img.to_bytes()
    import gzip

    # mtime=0 keeps the file byte-identical from run to run.
    path.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def write_study(phantom: Phantom, out_dir: str | Path, fmt: str = "dicom") -> Path:
    """Write one phantom study folder (DICOM) or one study into an RSNA 2024-style dataset root."""
    if fmt not in FORMATS:
        from reporter.errors import UsageError

        raise UsageError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "rsna2024":
            from reporter.synth.rsna import write_rsna_study

            return write_rsna_study(phantom, out)
        return _write_dicom_study(phantom, out)
    except OSError as exc:
        raise OutputError(f"cannot write phantom study to {out}: {exc.strerror or exc}") from None


def _write_dicom_study(phantom: Phantom, out: Path) -> Path:
    from reporter.synth.transfer import choose_transfer_syntax, encode

    dicom_dir = out / "dicom"
    series_index: dict[str, Any] = {}
    for s in phantom.study.series:
        folder = dicom_dir / f"{s.series_number:02d}_{s.role}"
        folder.mkdir(parents=True, exist_ok=True)
        ts = choose_transfer_syntax(phantom.meta, s)
        for ds in dicom_datasets(s, ExplicitVRLittleEndian):
            encode(ds, ts)
            ds.save_as(folder / f"IM_{int(ds.InstanceNumber):04d}.dcm", enforce_file_format=True)
        series_index[f"{s.series_uid}#{s.stack_index}"] = {
            "role": s.role,
            "stack_index": s.stack_index,
            "labels": f"labels/{label_key(s)}.nii.gz",
            "transfer_syntax": ts,
            "first_sop_instance_uid": s.sop_instance_uids[0],
        }
    lab_dir = out / "labels"
    lab_dir.mkdir(exist_ok=True)
    an = phantom.anatomy
    for s in phantom.study.series:
        key = f"{s.series_uid}#{s.stack_index}"
        lab = an.labels if key == f"{an.reference_series_uid}#{an.reference_stack_index}" else (
            an.extra_labels.get(key))  # fmt: skip
        if lab is not None:
            write_nifti(lab_dir / f"{label_key(s)}.nii.gz", lab, s.affine)
    (out / "findings.json").write_text(phantom.findings.to_json() + "\n", encoding="utf-8")
    meta = dict(phantom.meta)
    meta["series"] = series_index
    meta["anatomy"] = {
        "vertebrae": an.vertebrae,
        "levels": an.levels,
        "lumbar_vertebrae": an.lumbar_vertebrae,
        "transitional": an.transitional,
        "missing": an.missing,
        "reference": f"{an.reference_series_uid}#{an.reference_stack_index}",
    }
    (out / "meta.json").write_text(meta_json(meta), encoding="utf-8")
    try:
        from reporter.synth.seg import write_seg

        write_seg(phantom, out / "seg.dcm")
    except ImportError:
        pass
    return out


def load_phantom(study_dir: str | Path) -> Phantom:
    """Read a phantom study folder written by `write_study` back into a `Phantom`."""
    d = Path(study_dir)
    for name in ("findings.json", "meta.json"):
        if not (d / name).is_file():
            raise InputMissingError(f"not a phantom study folder (no {name}): {d}")
    try:
        findings = StudyFindings.model_validate_json((d / "findings.json").read_text("utf-8"))
        meta = json.loads((d / "meta.json").read_text("utf-8"))
    except ValueError as exc:
        raise InputDataError(
            f"phantom study {d} has an invalid findings.json or meta.json: {exc}"
        ) from None
    study = _load_dicom(d / "dicom")
    roles = meta.get("series", {})
    # Stacks are matched by their instances, not by stack index: a reader may order angled
    # blocks differently from the generator. Label maps are re-keyed to the loaded stacks.
    by_sop = {info.get("first_sop_instance_uid"): key for key, info in roles.items()}
    rekey: dict[str, str] = {}
    for s in study.series:
        key = next((by_sop[u] for u in s.sop_instance_uids if u in by_sop), None)
        if key is None:
            continue
        s.role = roles[key]["role"]
        rekey[key] = f"{s.series_uid}#{s.stack_index}"
    an_meta = meta.get("anatomy", {})
    ref = rekey.get(an_meta.get("reference", ""), "")
    labels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, info in roles.items():
        p = d / info["labels"]
        if not p.is_file():
            raise InputDataError(f"phantom study {d}: the label map {info['labels']} is missing")
        if key in rekey:  # a stack ingest set aside has no series to carry its labels
            img = nib.load(str(p))
            labels[rekey[key]] = (
                np.asarray(img.dataobj).astype(np.int16),
                nifti_to_lps_affine(img.affine),
            )
    if ref not in labels:
        raise InputDataError(f"phantom study {d} lacks the label map of its reference series")
    ref_uid, ref_stack = ref.split("#")
    anatomy = Anatomy(
        reference_series_uid=ref_uid,
        reference_stack_index=int(ref_stack),
        labels=labels[ref][0],
        affine=labels[ref][1],
        source="ground_truth",
        source_detail=f"phantom seed={meta.get('seed')} site={meta.get('site')}",
        vertebrae=an_meta.get("vertebrae", []),
        levels=an_meta.get("levels", []),
        lumbar_vertebrae=an_meta.get("lumbar_vertebrae"),
        transitional=an_meta.get("transitional", "none"),
        missing=an_meta.get("missing", []),
        extra_labels={k: v[0] for k, v in labels.items() if k != ref},
    )
    return Phantom(study=study, anatomy=anatomy, findings=findings, meta=meta)


def _load_dicom(folder: Path) -> Study:
    """Through ingest: what every user of the study sees (a refusal is the phantom's error)."""
    from reporter.ingest import load_study

    return load_study(folder)

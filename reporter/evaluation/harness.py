"""The evaluation harness: run the pipeline over a benchmark or labeled data, write metrics.json.

One path: every study goes through `reporter.report_study` (segmentation, VLM, grounding,
withholding) exactly as a user's study would; the harness only supplies the study in memory and
compares the Report with the truth (reporter.evaluation.scoring). On top, the checker alone is run
on the ground-truth findings with planted errors (reporter.grounding.inject) for `injected.*`.

Outputs in OUT: metrics.json, studies.jsonl (one StudyRecord per study, for audit), summary.md,
plots/*.png, run.json (command, commit, model, timings).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings, json_schema
from reporter.contracts.study import Study
from reporter.errors import OutputError, ReporterError, UsageError, describe_internal
from reporter.evaluation import scoring
from reporter.evaluation.benchmark import Case, get_benchmark
from reporter.evaluation.scoring import StudyRecord
from reporter.evaluation.study_scoring import score_truth

DATA_FORMATS = (
    "phantom",
    "rsna2024",
    "spider",
    "lumbar3d",
    "lumbar3d-2d",
    "sudirman",
    "spider-slices",
)
ARTIFACT_KINDS = ("gibbs", "ghosting", "wrap", "metal")


@dataclass
class LabeledStudy:
    """A study with its truth, however it was obtained (generated phantom or a dataset case)."""

    case_id: str
    study: Study
    truth: StudyFindings | None
    truth_anatomy: Anatomy | None
    site: str = "unknown"
    sex: str = "unknown"
    age: float | None = None
    tags: list[str] = field(default_factory=list)
    fmt: str = "phantom"
    # Truth on an input image's pixels (2-D formats; reporter.datasets.image_truth).
    image_truth: Any = None


@dataclass(frozen=True)
class EvalConfig:
    model: str | None = None
    adapter: str | None = None
    # Where the pipeline's anatomy comes from: "segmenter" (the built-in one, as for a user's
    # study) or "truth" (the case's own label map, imported as a user's --seg would be; isolates
    # the model and the checker from segmentation errors).
    anatomy: str = "segmenter"
    injected: bool = True  # also run the checker alone on truth with planted errors
    injected_seed: int = 0
    # Which anatomy the planted-error check uses: "truth" (the phantom's label maps: the checker
    # alone, as issue 5 defines it; costs one more measuring pass) or "pipeline" (the segmenter's
    # anatomy and the measurements the report already made: no extra cost).
    injected_anatomy: str = "truth"
    # Run the planted-error check on every n-th study only (by a stable hash of the case id), to
    # keep a full benchmark inside its time budget; 1 = every study.
    injected_every: int = 1
    # The report policy (reporter.grounding.policy; None: evidence_policy.json's default).
    policy: str | None = None


# --- sources ------------------------------------------------------------------------------------


def phantom_study(case: Case, priors: str = "realistic") -> LabeledStudy:
    """Generate one benchmark case in memory (no DICOM round trip: the Phantom's Study is the
    same object ingest would build from the written files)."""
    from reporter.synth import generate_study

    ph = generate_study(case.seed, site=case.site, priors=priors, **case.overrides_dict())
    meta = ph.meta or {}
    # Artifacts the sagittal series got (the series the model and the checker lean on).
    kinds = sorted(
        {
            kind
            for key, arts in (meta.get("artifacts") or {}).items()
            if key.startswith("sag_") and isinstance(arts, dict)
            for kind in arts
            if kind in ARTIFACT_KINDS
        }
        | ({"metal"} if meta.get("postoperative") else set())
    )
    return LabeledStudy(
        case_id=case.case_id,
        study=ph.study,
        truth=ph.findings,
        truth_anatomy=ph.anatomy,
        site=str(meta.get("site", case.site)),
        sex=_sex(meta.get("sex")),
        age=_age(meta.get("age")),
        tags=[*case.tags, *(f"artifact:{k}" for k in kinds)],
    )


def _sex(value: Any) -> str:
    s = str(value or "").strip().upper()
    return {"F": "F", "FEMALE": "F", "M": "M", "MALE": "M"}.get(s, "unknown")


def _age(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().upper()  # DICOM AS, e.g. "054Y"
    try:
        return float(text.rstrip("Y")) if text.endswith("Y") or text.isdigit() else None
    except ValueError:
        return None


def open_dataset(data: Path, fmt: str) -> Any:
    """The real-MRI area's loaders (reporter.datasets) for every user format."""
    if fmt not in DATA_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; expected one of {', '.join(DATA_FORMATS)}")
    from reporter.datasets import open_dataset as open_real

    return open_real(data, fmt)


def dataset_study(case: Any) -> LabeledStudy:
    meta = dict(getattr(case, "meta", {}) or {})
    return LabeledStudy(
        case_id=str(case.case_id),
        study=case.study,
        truth=case.findings,
        truth_anatomy=case.anatomy,
        site=str(meta.get("site", "unknown")),
        sex=_sex(meta.get("sex")),
        age=_age(meta.get("age")),
        fmt=str(case.fmt),
        image_truth=case.image_truth,
    )


# --- one study ----------------------------------------------------------------------------------


class DistributionRecorder:
    """The loaded model, passed to report_study in its place, that also keeps the full
    distribution over each field's values from the last prediction (the RSNA log loss and AUC
    need more than the stated value's probability). Everything else is the model's own: attribute
    access is forwarded, and predict() decodes exactly as the model's predict() does."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.last: dict[str, dict[str, dict[Any, float]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, study: Study, anatomy: Anatomy) -> StudyFindings:
        self.last = {}
        views_of = getattr(self._model, "predict_views", None)
        config = getattr(self._model, "config", None)
        if views_of is None or config is None or not hasattr(config, "views"):
            return self._model.predict(study, anatomy)
        from reporter.vlm.views import build_views

        # SpineVLM.predict is build_views + predict_views; the same two calls, with the
        # distributions hook its predict() does not expose.
        views = build_views(study, anatomy, config.views)
        return views_of(views, anatomy, distributions=self.last)


class Evaluator:
    """Holds what is loaded once per process (the model) and evaluates studies one at a time."""

    def __init__(self, config: EvalConfig, model: Any = None) -> None:
        """`model`: an already loaded model; by default the one `config` names, loaded once."""
        self.config = config
        from reporter.pipeline import get_model

        self.model = DistributionRecorder(model or get_model(config.model, config.adapter))
        self._validator = _schema_validator()
        self._segment_s = 0.0

    def provenance(self) -> dict[str, Any]:
        try:
            return dict(self.model.provenance())
        except Exception:  # provenance is informative only; never fail an eval for it
            return {}

    def evaluate(self, item: LabeledStudy) -> StudyRecord:
        record = StudyRecord(
            case_id=item.case_id, site=item.site, sex=item.sex, age=item.age, tags=item.tags
        )
        if item.truth is None and item.truth_anatomy is None and item.image_truth is None:
            record.error = "the case has neither ground-truth findings nor a label map"
            return record
        try:
            t0 = time.perf_counter()
            report, anatomy = self._report(item)
            record.latency_s = time.perf_counter() - t0
        except ReporterError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            return self._score(record, item)
        except Exception as exc:  # a crash on one study is a result, not the end of the run
            # Type and place only: metrics files are shared, and messages may quote header values.
            record.error = describe_internal(exc)
            return self._score(record, item)
        record.schema_valid = self._valid(report.raw_findings)
        record.timings = {
            **{k: float(v) for k, v in report.provenance.timings_s.items()},
            "segment": round(self._segment_s, 3),
        }
        scored = self._score(record, item, report, anatomy)
        if scored.error is not None:
            return scored
        every = max(1, self.config.injected_every)
        if (
            self.config.injected
            and item.truth is not None
            and zlib.crc32(item.case_id.encode()) % every == 0
        ):
            t0 = time.perf_counter()
            self._injected(record, item, report, anatomy)
            record.timings["injected_check"] = round(time.perf_counter() - t0, 3)
        return record

    def _score(
        self,
        record: StudyRecord,
        item: LabeledStudy,
        report: Any = None,
        anatomy: Anatomy | None = None,
    ) -> StudyRecord:
        """`record` with the truth compared (report None: counted as wrong). A truth that cannot
        be compared is a failed study, never the end of the run."""
        try:
            score_truth(
                record,
                item.fmt,
                item.truth,
                item.truth_anatomy,
                item.image_truth,
                study=item.study,
                report=report,
                anatomy=anatomy,
                distributions=self.model.last,
            )
        except Exception as exc:
            return StudyRecord(
                case_id=record.case_id,
                site=record.site,
                sex=record.sex,
                age=record.age,
                tags=record.tags,
                error=f"scoring against the truth failed: {describe_internal(exc)}",
            )
        return record

    def _report(self, item: LabeledStudy) -> tuple[Any, Anatomy]:
        """The one path: report_study on the in-memory study with the loaded model. The anatomy
        is the one report_study would make (pipeline.study_anatomy: the segmenter, or for 2-D
        images the disc detector's levels), or the truth's label map with `anatomy="truth"`,
        handed to it so level naming can be scored as well."""
        from reporter.pipeline import report_study

        t0 = time.perf_counter()
        if self.config.anatomy == "truth" and item.truth_anatomy is not None:
            anatomy = item.truth_anatomy
        else:
            from reporter.pipeline import study_anatomy

            anatomy = study_anatomy(item.study)
        self._segment_s = time.perf_counter() - t0
        report = report_study(
            item.study, model=self.model, anatomy=anatomy, policy=self.config.policy
        )
        return report, anatomy

    def _valid(self, findings: StudyFindings) -> bool:
        try:
            StudyFindings.model_validate_json(findings.model_dump_json())
            if self._validator is not None:
                self._validator.validate(json.loads(findings.to_json()))
            return True
        except Exception:
            return False

    def _injected(
        self, record: StudyRecord, item: LabeledStudy, report: Any, anatomy: Anatomy
    ) -> None:
        """The checker alone on the truth with planted errors (reporter.grounding.inject)."""
        from reporter.grounding import check
        from reporter.grounding.inject import inject_errors

        if item.truth is None:
            return
        # A stable per-study seed (str hash() is salted per process).
        seed = self.config.injected_seed + zlib.crc32(item.case_id.encode())
        planted_findings, planted = inject_errors(item.truth, seed=seed)
        if self.config.injected_anatomy == "truth" and item.truth_anatomy is not None:
            anat = item.truth_anatomy
        else:
            anat = anatomy
        # The report already measured the study on `anatomy`: judge on those same numbers.
        measured = _measure_dict(report) if anat is anatomy else None
        result = check(planted_findings, item.study, anat, measurements=measured)
        planted_keys = {(p.level, p.field) for p in planted}
        for v in result.verdicts:
            if v.level is None:
                continue
            flagged = v.verdict == "contradicted"
            if (v.level, v.field) in planted_keys:
                record.injected_planted.append(flagged)
            else:
                record.injected_true.append(flagged)


def _measure_dict(report: Any) -> dict[str, dict[str, Any]]:
    """The report's measurements in the shape `measure()` returns (level -> name -> value), so
    a second finding set is judged on exactly what the report measured."""
    out: dict[str, dict[str, Any]] = {}
    for m in report.measurements:
        if m.level is not None:
            out.setdefault(m.level, {})[m.name] = m
    return out


def _schema_validator() -> Any:
    try:
        import jsonschema
    except ModuleNotFoundError:
        return None
    return jsonschema.Draft202012Validator(json_schema())


# --- worker processes ----------------------------------------------------------------------------

_WORKER: Evaluator | None = None


def _init_worker(config: EvalConfig) -> None:
    global _WORKER
    _limit_threads()
    _WORKER = Evaluator(config)


def _work_case(case: Case, priors: str) -> dict[str, Any]:
    assert _WORKER is not None
    return _evaluate_case(_WORKER, case, priors).to_json() | {
        "_rss": _rss_mb(),
        "_prov": _WORKER.provenance(),
    }


def _evaluate_case(ev: Evaluator, case: Case, priors: str) -> StudyRecord:
    t0 = time.perf_counter()
    try:
        item = phantom_study(case, priors)
    except Exception as exc:  # a generator failure is recorded like any other failed study
        return StudyRecord(case_id=case.case_id, site=case.site, error=f"generate: {exc}")
    gen_s = time.perf_counter() - t0
    rec = ev.evaluate(item)
    rec.timings["generate"] = round(gen_s, 3)
    return rec


def _limit_threads() -> None:
    # Worker processes share 2 cores; one BLAS / torch thread each keeps them from fighting.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass


def _rss_mb() -> float:
    """Peak resident set of this process in MB (Linux reports ru_maxrss in kB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


# --- the run --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    metrics: dict[str, Any]
    records: list[StudyRecord]
    out_dir: Path
    wall_s: float


def run_benchmark(
    name: str,
    out_dir: Path,
    config: EvalConfig,
    limit: int | None = None,
    workers: int = 1,
    progress: Callable[[int, int, StudyRecord], None] | None = None,
    model: Any = None,
) -> RunResult:
    """`model`: an already loaded model object (in-process runs only; workers load `config`'s)."""
    bench = get_benchmark(name)
    cases = bench.cases(limit)
    t0 = time.perf_counter()
    records: list[StudyRecord] = []
    rss = [_rss_mb()]
    if workers <= 1:
        _limit_threads()
        ev = Evaluator(config, model)
        prov = ev.provenance()
        for i, case in enumerate(cases):
            rec = _evaluate_case(ev, case, bench.priors)
            records.append(rec)
            if progress:
                progress(i + 1, len(cases), rec)
        rss.append(_rss_mb())
    else:
        prov = {}
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(config,)
        ) as pool:
            futures = [pool.submit(_work_case, c, bench.priors) for c in cases]
            for i, fut in enumerate(futures):
                data = fut.result()
                rss.append(float(data.pop("_rss")))
                prov = data.pop("_prov") or prov
                rec = StudyRecord(**data)
                records.append(rec)
                if progress:
                    progress(i + 1, len(cases), rec)
    wall = time.perf_counter() - t0
    source = {
        "benchmark": name,
        "description": bench.description,
        "limit": limit,
        "workers": workers,
        "config": asdict(config),
    }
    return _finish(records, out_dir, source, prov, max(rss), wall)


def run_dataset(
    data: Path,
    fmt: str,
    out_dir: Path,
    config: EvalConfig,
    limit: int | None = None,
    progress: Callable[[int, int, StudyRecord], None] | None = None,
    warn: Callable[[str], None] | None = None,
    split: str | None = None,
) -> RunResult:
    """Evaluate every case of the dataset at `data`; `warn` receives one line per row of the
    dataset's files that was skipped (they are also kept in run.json `data_warnings`)."""
    if not data.exists():
        from reporter.errors import InputMissingError

        raise InputMissingError(f"dataset folder {data} does not exist")
    dataset = open_dataset(data, fmt)
    # The split is a pure function of the patient id (reporter.datasets.splits): held-out numbers
    # are measured on "test" patients only.
    cases = [c for c in dataset if split is None or c.split == split]
    cases = cases[: limit if limit is not None else None]
    if not cases:
        from reporter.errors import InputDataError

        raise InputDataError(
            f"no cases found in {data} as --format {fmt}"
            + (f" in the {split} split" if split else "")
        )
    if warn is not None:
        for line in dataset.warnings:
            warn(line)
    _limit_threads()
    ev = Evaluator(config)
    t0 = time.perf_counter()
    records = []
    for i, case in enumerate(cases):
        try:
            item = dataset_study(case)
        except ReporterError as exc:
            rec = _unread(case, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a case whose files cannot be read is a result, not the end
            rec = _unread(case, describe_internal(exc))
        else:
            rec = ev.evaluate(item)
        records.append(rec)
        if progress:
            progress(i + 1, len(cases), rec)
    wall = time.perf_counter() - t0
    source = {
        "data": str(data),
        "format": fmt,
        "limit": limit,
        "split": split,
        "workers": 1,
        "config": asdict(config),
        "data_warnings": list(dataset.warnings),
    }
    return _finish(records, out_dir, source, ev.provenance(), _rss_mb(), wall)


def _unread(case: Any, error: str) -> StudyRecord:
    """The failed record of a case whose study (or truth) could not be read; the truth that can
    be read without the study still counts, as wrong (its graded discs not assessed, its
    structures not detected)."""
    record = StudyRecord(case_id=str(case.case_id), error=error)
    try:
        score_truth(record, str(case.fmt), case.findings, None, case.image_truth)
    except Exception:  # the truth itself is unreadable: nothing to count
        record = StudyRecord(case_id=str(case.case_id), error=error)
    return record


def _finish(
    records: list[StudyRecord],
    out_dir: Path,
    source: dict[str, Any],
    provenance: dict[str, Any],
    peak_rss_mb: float,
    wall_s: float,
) -> RunResult:
    from reporter.evaluation import tradeoff

    metrics = scoring.compute_metrics(records, peak_rss_mb=round(peak_rss_mb, 1))
    points = tradeoff.curve(records)
    if points:  # the posterior policy's threshold trade-off (reporter.evaluation.tradeoff)
        metrics["hallucination"]["tradeoff"] = points
    run = {
        **source,
        "command": " ".join(["spine-report", *sys.argv[1:]])
        if sys.argv[1:2] == ["eval"]
        else " ".join(sys.argv),
        "commit": git_commit(),
        "model": provenance,
        "wall_s": round(wall_s, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_outputs(out_dir, metrics, records, run)
    return RunResult(metrics, records, out_dir, wall_s)


def write_outputs(
    out_dir: Path, metrics: dict[str, Any], records: list[StudyRecord], run: dict[str, Any]
) -> None:
    from reporter.evaluation import plots, summary, tradeoff

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
        _atomic_write(
            out_dir / "studies.jsonl",
            "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records),
        )
        _atomic_write(out_dir / "run.json", json.dumps(run, indent=2, sort_keys=True))
        _atomic_write(out_dir / "summary.md", summary.render(metrics, run, records))
        plots.write_all(out_dir / "plots", metrics, records)
        points = metrics.get("hallucination", {}).get("tradeoff") or []
        if points:
            name = run.get("benchmark") or run.get("data") or ""
            tradeoff.plot(out_dir / "plots" / "tradeoff.png", points, f"{name}: posterior policy")
    except OSError as exc:
        raise OutputError(f"cannot write evaluation results to {out_dir}: {exc}") from None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def git_commit() -> str | None:
    """The commit of the source tree that ran (with '-dirty' when it had local changes), or
    SPINE_REPORTER_COMMIT when set (a run from an exported snapshot of a commit)."""
    if os.environ.get("SPINE_REPORTER_COMMIT"):
        return os.environ["SPINE_REPORTER_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "reporter"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def iter_records(path: Path) -> Iterator[StudyRecord]:
    """Read a studies.jsonl back (to recompute metrics or plots without rerunning)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield StudyRecord(**json.loads(line))

"""eval/grading_ci.py: intervals by patient, AUC, ECE and per-group tables from studies.jsonl."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "spider"
    run.mkdir()
    recs = []
    for case in range(1, 9):
        good = case % 2 == 0  # even patients graded right, odd ones one grade off
        recs.append(
            {
                "case_id": str(case),
                "site": "Siemens" if case <= 4 else "Philips",
                "pairs": {"pfirrmann": [[3, 3 if good else 4], [2, 2 if good else 1]]},
                "unassessed": {"pfirrmann": [5] if case == 1 else []},
                "scores": {"herniation": [[True, 0.9], [False, 0.2 if good else 0.95]]},
                "calibration": [[0.9, good], [0.6, True]],
            }
        )
    (run / "studies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def _ci(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "eval" / "grading_ci.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_json_counts_unassessed_and_reports_auc_and_ece(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    r = _ci(str(run), "--conditions", "pfirrmann,herniation", "--json", "--by", "site")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    pf = out["all"]["conditions"]["pfirrmann"]
    assert pf["n_patients"] == 8 and pf["n_graded"] == 17 and pf["n_unassessed"] == 1
    assert pf["balanced_accuracy_all"] < pf["balanced_accuracy_assessed"]
    lo, hi = pf["balanced_accuracy_assessed_ci95"]
    assert lo < pf["balanced_accuracy_assessed"] < hi
    # 8 of 8 positives score 0.9; negatives 0.2 (4) or 0.95 (4): AUC = 0.5 * 1 + 0.5 * 0 = 0.5
    assert abs(out["all"]["conditions"]["herniation"]["auc"] - 0.5) < 1e-9
    cal = out["all"]["calibration"]
    assert cal["n_values"] == 16 and 0.0 < cal["ece"] < 1.0
    assert set(out) == {"all", "Philips", "Siemens"}


def test_field_strength_needs_the_overview(tmp_path: Path) -> None:
    r = _ci(str(_run_dir(tmp_path)), "--by", "field_strength")
    assert r.returncode == 64 and "overview" in r.stderr and "Traceback" not in r.stderr

"""Choose the posterior policy's thresholds (reporter/grounding/evidence_policy.json) per
condition and evidence state on FITTING validation phantoms, check them on HELD-OUT validation
phantoms, and print the trade-off of hallucination against retention.

    python -m reporter.training.evidence_policy --fit runs/gv/fit.jsonl \
        --heldout runs/gv/heldout.jsonl --out reporter/grounding/evidence_policy.json \
        --plot-dir eval/results/evidence-validation

Input: dumps of eval/grounding_dump.py (validation seeds only: the model's raw statements on the
built-in segmenter's anatomy, its measurements, the band verdicts and the exact truth). Every
statement is weighed with reporter.grounding.evidence (the function the checker calls) under the
current error_models.json.

Rule (stated in the file). A cell is a condition (reporter.grounding.policy.condition: a field
without its side or endplate suffix) and an evidence state (measured / unverifiable). For each
probability clip of CLIPS, on the fitting studies only:
1. Assertion: for a penalty mu over MU_GRID, each cell takes the assert_at of ASSERT_CELL or
   "never" that maximises (true positives asserted) - mu * (hallucinated positives asserted),
   ties to the higher threshold ("never" highest); a cell with fewer than MIN_CELL positive
   statements is "never". Among the mu whose pooled hallucinated share of asserted positives is
   <= FIT_HALLUCINATED (0.5 % less a margin), the one with the highest pooled true-positive
   retention (ties: the larger mu). This is the Lagrangian form of "most retained true
   positives under a pooled hallucination budget": a cell whose probability does not separate
   true from false claims buys no retention cheaply enough and stays "never".
2. Contradiction, a second objective (measured cells): for a penalty nu over NU_GRID, each cell
   takes the contradict_below of CONTRADICT that maximises (hallucinated positives contradicted)
   - nu * (correct statements or asserted true positives contradicted), ties to the lower
   threshold; among the nu whose pooled false-flag rate is <= FIT_FALSE_FLAGS (3 % less a
   margin) and whose contradictions cost at most MAX_RETENTION_LOSS of step 1's retention, the
   one with the highest pooled flag recall (ties: the larger nu).
The clip with the highest fitting retention wins (ties: higher flag recall, lower clip). The
held-out studies are then scored once; "posterior" becomes the default policy only when the
held-out numbers meet all three targets (hallucinated <= 0.5 %, retention >= 90 %, false flags
<= 3 %); otherwise the band policy stays the default. Definitions as
reporter.evaluation.scoring's (a positive statement is hallucinated when the truth at its level
is normal or the level does not exist).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, is_abnormal
from reporter.contracts.verdicts import Measurement, Verdict
from reporter.grounding import error_model
from reporter.grounding.evidence import Weighing, combine, likelihood
from reporter.grounding.policy import CONDITIONS, STATES, condition

CLIPS = (0.99, 0.995, 0.999, 0.9999)
CONTRADICT = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ASSERT = tuple(sorted({*np.round(np.linspace(0.0, 1.0, 101), 4), 0.995, 0.998, 0.999}))
MAX_HALLUCINATED, MAX_FALSE_FLAGS, MIN_RETENTION = 0.005, 0.03, 0.90
PRIOR_WITHOUT_PROBABILITY = 0.5  # external findings without a probability: an even prior


@dataclass
class Item:
    """One raw level statement with what the policies need."""

    field: str
    claim: Any
    probability: float
    lik: dict[Any, float] | None  # None: nothing measured
    level_missing: bool  # the band checker found the level does not exist
    band: str  # the band verdict
    positive: bool
    hallucinated: bool | None  # positives only
    correct: bool | None  # None: the truth cannot judge it


def items_of(row: dict[str, Any]) -> list[Item]:
    raw = StudyFindings.model_validate(row["raw_findings"])
    truth = StudyFindings.model_validate(row["truth_findings"])
    verdicts = {(v["level"], v["field"]): Verdict.model_validate(v) for v in row["verdicts"]}
    facts = row["anatomy"]
    source = facts["source"]
    measures = {
        level: {k: Measurement.model_validate(m) for k, m in ms.items()}
        for level, ms in row["measures"][source].items()
    }
    thickness = {role: s["slice_thickness_mm"] for role, s in row["spacing"].items()}
    where = Weighing(source=source, thickness=thickness)
    out = []
    for lf in raw.levels:
        gt = truth.level(lf.level)
        for fld in LEVEL_FIELDS:
            f = getattr(lf, fld)
            if not f.assessed:
                continue
            v = verdicts.get((lf.level, fld))
            if v is None:
                continue
            positive = is_abnormal(fld, f.value)
            gt_value = (
                getattr(gt, fld).value if gt is not None and getattr(gt, fld).assessed else None
            )
            if gt is None:
                hallucinated, correct = (True if positive else None), None
            elif gt_value is None:
                continue
            else:
                hallucinated = (not is_abnormal(fld, gt_value)) if positive else None
                correct = f.value == gt_value
            level_missing = v.rule == "level_exists" and v.verdict == "contradicted"
            # As the checker: evidence only for levels named, existing, in view and measured.
            measured_level = (
                not facts["naming_uncertain"]
                and not level_missing
                and lf.level in facts["levels"]
                and lf.level in measures
            )
            got = likelihood(fld, lf, measures[lf.level], where) if measured_level else None
            p = PRIOR_WITHOUT_PROBABILITY if f.probability is None else float(f.probability)
            out.append(
                Item(
                    fld,
                    f.value,
                    p,
                    got[0] if got else None,
                    level_missing,
                    v.verdict,
                    positive,
                    hallucinated,
                    correct,
                )
            )
    return out


def posteriors(items: list[Item], clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(posterior of the claim, posterior abnormal, measured?) per item."""
    post, abn, meas = [], [], []
    for it in items:
        lik = it.lik or {v: 1.0 for v in _values(it.field)}
        _, p, a = combine(it.field, it.claim, lik, it.probability, clip)
        if it.level_missing:
            p, a = 0.0, 0.0
        post.append(p)
        abn.append(a)
        meas.append(it.lik is not None)
    return np.array(post), np.array(abn), np.array(meas)


def _values(field: str) -> tuple[Any, ...]:
    from reporter.contracts.findings import field_values

    return field_values(field)


def rates(
    items: list[Item], contradicted: np.ndarray, asserted_pos: np.ndarray
) -> dict[str, float]:
    pos = np.array([it.positive for it in items])
    hall = np.array([bool(it.hallucinated) for it in items])
    corr = np.array([it.correct is True for it in items])
    n_true_raw = int((pos & ~hall).sum())
    n_asserted = int(asserted_pos.sum())
    n_hall = int((asserted_pos & hall).sum())
    return {
        "n_positive_raw": int(pos.sum()),
        "n_hallucinated_raw": int((pos & hall).sum()),
        "n_asserted": n_asserted,
        "n_hallucinated_asserted": n_hall,
        "hallucinated_after": n_hall / n_asserted if n_asserted else 0.0,
        "true_positive_retention": int((asserted_pos & ~hall).sum()) / n_true_raw
        if n_true_raw
        else float("nan"),
        "false_flag_rate": float((contradicted & corr).sum() / corr.sum()) if corr.sum() else 0.0,
        "flag_recall": float((contradicted & pos & hall).sum() / (pos & hall).sum())
        if (pos & hall).sum()
        else float("nan"),
    }


def band_policies(items: list[Item]) -> dict[str, dict[str, float]]:
    pos = np.array([it.positive for it in items])
    contradicted = np.array([it.band == "contradicted" for it in items])
    supported = np.array([it.band == "supported" for it in items])
    return {
        "bands": rates(items, contradicted, pos & supported),
        "contradicted-only": rates(items, contradicted, pos & ~contradicted),
    }


# --- per-condition thresholds ---------------------------------------------------------------
ASSERT_CELL = tuple(sorted({*ASSERT, *np.round(np.arange(0.99, 1.0, 0.001), 4), 0.9995, 0.9999}))
FIT_HALLUCINATED, FIT_FALSE_FLAGS = 0.004, 0.025  # the targets less a margin, on fitting studies
MAX_RETENTION_LOSS = 0.01  # contradictions may cost at most 1 point of fitting retention
MIN_CELL = 5  # fewer positive statements on fitting studies: too few to judge, "never"
MU_GRID = tuple(np.geomspace(0.05, 5000.0, 320))
NU_GRID = tuple(np.geomspace(0.01, 1000.0, 200))
NEVER = "never"
CELLS: tuple[tuple[str, str], ...] = tuple((c, s) for c in CONDITIONS for s in STATES)

Conditions = dict[str, dict[str, dict[str, Any]]]  # evidence_policy.json's "conditions"


@dataclass
class Table:
    """One split's statements at one probability clip, as arrays."""

    post: np.ndarray  # posterior of the claim
    abn: np.ndarray  # posterior of an abnormal value
    meas: np.ndarray
    pos: np.ndarray
    hall: np.ndarray
    corr: np.ndarray
    missing: np.ndarray
    cell: np.ndarray  # index into CELLS


def table(items: list[Item], clip: float) -> Table:
    post, abn, meas = posteriors(items, clip)
    cell_index = {c: k for k, c in enumerate(CELLS)}
    return Table(
        post=post,
        abn=abn,
        meas=meas,
        pos=np.array([it.positive for it in items], bool),
        hall=np.array([bool(it.hallucinated) for it in items], bool),
        corr=np.array([it.correct is True for it in items], bool),
        missing=np.array([it.level_missing for it in items], bool),
        cell=np.array(
            [
                cell_index[(condition(it.field), "measured" if m else "unverifiable")]
                for it, m in zip(items, meas, strict=True)
            ],
            int,
        ),
    )


def _vectors(tab: Table, conditions: Conditions) -> tuple[np.ndarray, np.ndarray]:
    """Per statement: its assertion threshold (inf: never) and contradiction threshold."""
    t_a = np.empty(len(CELLS))
    t_c = np.zeros(len(CELLS))
    for k, (cond, state) in enumerate(CELLS):
        cell = conditions[cond][state]
        t_a[k] = np.inf if cell["assert_at"] == NEVER else float(cell["assert_at"])
        t_c[k] = float(cell.get("contradict_below", 0.0))
    return t_a[tab.cell], t_c[tab.cell]


def apply(tab: Table, conditions: Conditions) -> tuple[np.ndarray, np.ndarray]:
    """(contradicted, asserted positive) per statement under the per-condition thresholds, as
    reporter.grounding.policy applies them."""
    t_a, t_c = _vectors(tab, conditions)
    contradicted = tab.missing | (tab.meas & (tab.post < t_c))
    return contradicted, tab.pos & ~contradicted & (tab.abn >= t_a)


def table_rates(tab: Table, contradicted: np.ndarray, asserted_pos: np.ndarray) -> dict[str, Any]:
    pos, hall, corr = tab.pos, tab.hall, tab.corr
    n_true_raw = int((pos & ~hall).sum())
    n_asserted = int(asserted_pos.sum())
    n_hall = int((asserted_pos & hall).sum())
    n_pos_hall = int((pos & hall).sum())
    return {
        "n_positive_raw": int(pos.sum()),
        "n_hallucinated_raw": n_pos_hall,
        "n_asserted": n_asserted,
        "n_hallucinated_asserted": n_hall,
        "hallucinated_after": n_hall / n_asserted if n_asserted else 0.0,
        "true_positive_retention": int((asserted_pos & ~hall).sum()) / n_true_raw
        if n_true_raw
        else float("nan"),
        "n_correct": int(corr.sum()),
        "n_false_flags": int((contradicted & corr).sum()),
        "false_flag_rate": float((contradicted & corr).sum() / corr.sum()) if corr.sum() else 0.0,
        "n_flagged_hallucinated": int((contradicted & pos & hall).sum()),
        "flag_recall": float((contradicted & pos & hall).sum() / n_pos_hall)
        if n_pos_hall
        else float("nan"),
    }


def band_rates(items: list[Item], tab: Table) -> dict[str, dict[str, Any]]:
    """The band checker's policies ("bands", "contradicted-only") on the same statements."""
    contradicted = np.array([it.band == "contradicted" for it in items], bool)
    supported = np.array([it.band == "supported" for it in items], bool)
    return {
        "bands": table_rates(tab, contradicted, tab.pos & supported),
        "contradicted-only": table_rates(tab, contradicted, tab.pos & ~contradicted),
    }


def score(tab: Table, conditions: Conditions) -> dict[str, Any]:
    return table_rates(tab, *apply(tab, conditions))


def choose_contradictions(tab: Table, asserted_true: np.ndarray) -> dict[int, float]:
    """Step 2 of the rule: contradict_below per measured cell, given the statements step 1
    asserts (`asserted_true`: true positives asserted)."""
    cells = [k for k, (_, s) in enumerate(CELLS) if s == "measured"]
    body = tab.meas & ~tab.missing
    flag_gain = np.zeros((len(cells), len(CONTRADICT)))
    flag_cost = np.zeros_like(flag_gain)
    false_flags = np.zeros_like(flag_gain)
    lost = np.zeros_like(flag_gain)
    for i, k in enumerate(cells):
        m = body & (tab.cell == k)
        for j, t in enumerate(CONTRADICT):
            c = m & (tab.post < t)
            flag_gain[i, j] = (c & tab.pos & tab.hall).sum()
            flag_cost[i, j] = (c & (tab.corr | asserted_true)).sum()
            false_flags[i, j] = (c & tab.corr).sum()
            lost[i, j] = (c & asserted_true).sum()
    base_ff = int((tab.missing & tab.corr).sum())
    base_flags = int((tab.missing & tab.pos & tab.hall).sum())
    n_corr, n_hall = max(int(tab.corr.sum()), 1), max(int((tab.pos & tab.hall).sum()), 1)
    n_true_raw = max(int((tab.pos & ~tab.hall).sum()), 1)
    best: tuple[tuple[float, float], list[int]] | None = None
    for nu in NU_GRID:
        # ties: the lower threshold (argmax takes the first)
        pick = [int(np.argmax(flag_gain[i] - nu * flag_cost[i])) for i in range(len(cells))]
        ff = (base_ff + sum(false_flags[i, j] for i, j in enumerate(pick))) / n_corr
        loss = sum(lost[i, j] for i, j in enumerate(pick)) / n_true_raw
        if ff > FIT_FALSE_FLAGS or loss > MAX_RETENTION_LOSS:
            continue
        recall = (base_flags + sum(flag_gain[i, j] for i, j in enumerate(pick))) / n_hall
        key = (recall, nu)
        if best is None or key > best[0]:
            best = (key, pick)
    pick = best[1] if best is not None else [0] * len(cells)
    return {k: float(CONTRADICT[j]) for k, j in zip(cells, pick, strict=True)}


def _assert_counts(tab: Table, contradicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, hallucinated) positives asserted per cell x candidate (ASSERT_CELL, then never)."""
    true_n = np.zeros((len(CELLS), len(ASSERT_CELL) + 1))
    hall_n = np.zeros_like(true_n)
    live = tab.pos & ~contradicted
    for k in range(len(CELLS)):
        m = live & (tab.cell == k)
        abn, hall = tab.abn[m], tab.hall[m]
        for j, t in enumerate(ASSERT_CELL):
            a = abn >= t
            true_n[k, j] = (a & ~hall).sum()
            hall_n[k, j] = (a & hall).sum()
    return true_n, hall_n


def allocate(true_n: np.ndarray, hall_n: np.ndarray, mu: float, eligible: np.ndarray) -> list[int]:
    """Each cell's candidate maximising true - mu * hallucinated (ties: the higher threshold;
    the last candidate, never, is highest); ineligible cells: never."""
    last = true_n.shape[1] - 1
    out = []
    for k in range(true_n.shape[0]):
        if not eligible[k]:
            out.append(last)
            continue
        gain = (true_n[k] - mu * hall_n[k])[::-1]
        out.append(last - int(np.argmax(gain)))
    return out


def _conditions(contradict: dict[int, float], pick: list[int]) -> Conditions:
    out: Conditions = {c: {} for c in CONDITIONS}
    for k, (cond, state) in enumerate(CELLS):
        j = pick[k]
        cell: dict[str, Any] = {
            "assert_at": NEVER if j == len(ASSERT_CELL) else float(ASSERT_CELL[j])
        }
        if state == "measured":
            cell["contradict_below"] = contradict.get(k, 0.0)
        out[cond][state] = cell
    return out


def choose_cells(tab: Table) -> tuple[Conditions, list[Conditions]]:
    """Steps 1 and 2 of the rule at one clip: the chosen thresholds, and the allocation at every
    mu of MU_GRID (the trade-off curve; contradictions as chosen)."""
    no_flags = {k: 0.0 for k, (_, s) in enumerate(CELLS) if s == "measured"}
    contradicted = tab.missing.copy()
    true_n, hall_n = _assert_counts(tab, contradicted)
    n_pos = np.bincount(tab.cell[tab.pos], minlength=len(CELLS))
    eligible = n_pos >= MIN_CELL
    n_true_raw = max(int((tab.pos & ~tab.hall).sum()), 1)
    picks, best = [], None
    for mu in MU_GRID:
        pick = allocate(true_n, hall_n, mu, eligible)
        picks.append(pick)
        t = sum(true_n[k, j] for k, j in enumerate(pick))
        h = sum(hall_n[k, j] for k, j in enumerate(pick))
        if (h / (t + h) if t + h else 0.0) > FIT_HALLUCINATED:
            continue
        key = (t / n_true_raw, mu)
        if best is None or key > best[0]:
            best = (key, pick)
    assert best is not None  # never everywhere is always feasible
    _, asserted = apply(tab, _conditions(no_flags, best[1]))
    contradict = choose_contradictions(tab, asserted & ~tab.hall)
    return _conditions(contradict, best[1]), [_conditions(contradict, p) for p in picks]


def choose(
    items: list[Item],
) -> tuple[float, Conditions, list[Conditions], dict[str, Any]]:
    """The whole rule on fitting statements: (clip, conditions, the curve, fitting numbers)."""
    best: tuple[tuple[float, ...], float, Conditions, list[Conditions], dict[str, Any]] | None
    best = None
    for clip in CLIPS:
        tab = table(items, clip)
        conditions, curve_ = choose_cells(tab)
        r = score(tab, conditions)
        key = (r["true_positive_retention"], r["flag_recall"], -clip)
        if best is None or key > best[0]:
            best = (key, clip, conditions, curve_, r)
    assert best is not None
    return best[1], best[2], best[3], best[4]


def per_cell(tab: Table, conditions: Conditions) -> dict[str, dict[str, dict[str, Any]]]:
    """Per condition and evidence state: positives, hallucinated, asserted, retention..."""
    contradicted, asserted_pos = apply(tab, conditions)
    out: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in CONDITIONS}
    for k, (cond, state) in enumerate(CELLS):
        m = tab.cell == k
        pos, hall = tab.pos & m, tab.hall & m
        n_true = int((pos & ~hall).sum())
        n_asserted = int((asserted_pos & m).sum())
        n_hall_asserted = int((asserted_pos & m & hall).sum())
        out[cond][state] = {
            "n_positive": int(pos.sum()),
            "n_hallucinated": int((pos & hall).sum()),
            "n_asserted": n_asserted,
            "n_hallucinated_asserted": n_hall_asserted,
            "retention": (n_asserted - n_hall_asserted) / n_true if n_true else None,
            "hallucinated_after": n_hall_asserted / n_asserted if n_asserted else None,
            "n_flagged_hallucinated": int((contradicted & pos & hall).sum()),
            "n_false_flags": int((contradicted & tab.corr & m).sum()),
        }
    return out


def global_curve(tab: Table, conditions: Conditions) -> list[dict[str, Any]]:
    """One assertion threshold for every cell (the per-condition contradictions kept)."""
    contradicted, _ = apply(tab, conditions)
    return [
        {
            "assert_at": float(t),
            **table_rates(tab, contradicted, tab.pos & ~contradicted & (tab.abn >= t)),
        }
        for t in ASSERT_CELL
    ]


def plot_curves(
    path: Path,
    panels: dict[str, dict[str, Any]],
) -> Path:
    """One panel per split: the per-condition allocation over mu, one global threshold, the chosen
    thresholds and the band policies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), sharey=True)
    for ax, (title, p) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        for name, pts, style in (
            ("per-condition thresholds (over the budget)", p["allocation"], "-"),
            ("one global threshold", p["global"], "--"),
        ):
            ax.plot(
                [q["true_positive_retention"] for q in pts],
                [100 * q["hallucinated_after"] for q in pts],
                style,
                label=name,
            )
        c = p["chosen"]
        ax.plot(c["true_positive_retention"], 100 * c["hallucinated_after"], "o", label="chosen")
        for name, r in p["bands"].items():
            ax.plot(r["true_positive_retention"], 100 * r["hallucinated_after"], "s", label=name)
        ax.axhline(100 * MAX_HALLUCINATED, ls=":", c="grey")
        ax.axvline(MIN_RETENTION, ls=":", c="grey")
        ax.set_ylim(0, 6)
        ax.set_xlabel("true-positive retention")
        ax.set_title(title, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("hallucinated share of asserted positives (%)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(r: dict[str, Any]) -> str:
    return (
        f"hallucinated {100 * r['hallucinated_after']:.2f}% ({r['n_hallucinated_asserted']}"
        f" of {r['n_asserted']}), retention {100 * r['true_positive_retention']:.1f}%, "
        f"false flags {100 * r['false_flag_rate']:.2f}% ({r['n_false_flags']} of "
        f"{r['n_correct']}), flag recall {r['flag_recall']:.3f} ({r['n_flagged_hallucinated']} "
        f"of {r['n_hallucinated_raw']})"
    )


def _met(r: dict[str, Any]) -> bool:
    return (
        r["hallucinated_after"] <= MAX_HALLUCINATED
        and r["true_positive_retention"] >= MIN_RETENTION
        and r["false_flag_rate"] <= MAX_FALSE_FLAGS
    )


def _rows(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines() if line]


def _span(rows: list[dict[str, Any]]) -> str:
    seeds = [r["seed"] for r in rows]
    sites = sorted({r["site"] for r in rows})
    return f"{len(rows)} studies, seeds {min(seeds)}-{max(seeds)} ({', '.join(sites)})"


def _cell_text(cell: dict[str, Any]) -> str:
    a = cell["assert_at"]
    return "never" if a == NEVER else f">= {a:g}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=Path, nargs="+", required=True)
    ap.add_argument("--heldout", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    fit_rows, held_rows = _rows(args.fit), _rows(args.heldout)
    if any(r["seed"] >= 1_000_000 for r in fit_rows + held_rows):
        raise SystemExit("thresholds are chosen on validation seeds (< 1000000) only")
    if {r["seed"] for r in fit_rows} & {r["seed"] for r in held_rows}:
        raise SystemExit("fitting and held-out studies overlap")
    fit_items = [it for row in fit_rows for it in items_of(row)]
    held_items = [it for row in held_rows for it in items_of(row)]
    clip, conditions, allocation, _ = choose(fit_items)
    tabs = {"fitting": table(fit_items, clip), "heldout": table(held_items, clip)}
    items_by = {"fitting": fit_items, "heldout": held_items}
    validation: dict[str, dict[str, Any]] = {}
    n_studies = {"fitting": len(fit_rows), "heldout": len(held_rows)}
    for split, tab in tabs.items():
        validation[split] = {
            name: {"n_studies": n_studies[split], **r}
            for name, r in {
                **band_rates(items_by[split], tab),
                "posterior": score(tab, conditions),
            }.items()
        }
    met = _met(validation["heldout"]["posterior"])
    cells = {split: per_cell(tab, conditions) for split, tab in tabs.items()}

    lines = [
        f"fitting: {_span(fit_rows)}, {len(fit_items)} statements; "
        f"held-out: {_span(held_rows)}, {len(held_items)} statements",
        f"chosen probability clip {clip}; budgets on fitting: hallucinated <= "
        f"{100 * FIT_HALLUCINATED:.1f}%, false flags <= {100 * FIT_FALSE_FLAGS:.1f}%; "
        f"cells with < {MIN_CELL} positives: never",
        "",
        "pooled numbers per policy",
    ]
    for split in ("fitting", "heldout"):
        for name, r in validation[split].items():
            lines.append(f"  {split:8s} {name:18s} {_fmt(r)}")
    lines += [
        "",
        f"targets on held-out (hallucinated <= {100 * MAX_HALLUCINATED:.1f}%, retention >= "
        f"{100 * MIN_RETENTION:.0f}%, false flags <= {100 * MAX_FALSE_FLAGS:.0f}%): "
        f"{'met: posterior is the default' if met else 'NOT met: bands stay the default'}",
        "",
        "per condition and evidence state: threshold; fitting / held-out: asserted of positive "
        "(hallucinated asserted of hallucinated), retention",
        f"{'condition':22s} {'state':12s} {'assert':>9s} {'contra<':>7s}  "
        f"{'fitting':36s} {'held-out':36s}",
    ]

    def cell_numbers(c: dict[str, Any]) -> str:
        ret = "  -  " if c["retention"] is None else f"{100 * c['retention']:5.1f}%"
        return (
            f"{c['n_asserted']:4d}/{c['n_positive']:<4d} ({c['n_hallucinated_asserted']:2d}/"
            f"{c['n_hallucinated']:<2d} hall) {ret}"
        )

    for cond in CONDITIONS:
        for state in STATES:
            cell = conditions[cond][state]
            cb = cell.get("contradict_below")
            lines.append(
                f"{cond:22s} {state:12s} {_cell_text(cell):>9s} "
                f"{'' if cb is None else f'{cb:g}':>7s}  "
                f"{cell_numbers(cells['fitting'][cond][state]):36s} "
                f"{cell_numbers(cells['heldout'][cond][state]):36s}"
            )
    if not met:
        h = validation["heldout"]["posterior"]
        lines += [
            "",
            f"gap on held-out: retention {100 * h['true_positive_retention']:.1f}% of the 90% "
            f"target, hallucinated {100 * h['hallucinated_after']:.2f}% (target <= 0.5%), "
            f"false flags {100 * h['false_flag_rate']:.2f}% (target <= 3%). Claims in cells "
            "marked never are listed as unconfirmed suggestions: their model probability does "
            "not separate true from hallucinated findings on the fitting studies, and the "
            "checker has no measurement for them (or none that does).",
        ]
    text = "\n".join(lines)
    print(text)

    command = (
        "python -m reporter.training.evidence_policy --fit "
        f"{' '.join(map(str, args.fit))} --heldout {' '.join(map(str, args.heldout))} "
        f"--out {args.out} --plot-dir {args.plot_dir}"
    )
    doc = {
        "version": "2",
        "note": "Thresholds of the posterior report policy (reporter/grounding/policy.py) per "
        "condition and evidence state, chosen on fitting validation phantoms and checked on "
        "held-out validation phantoms; see the rule. 'never': a positive claim of that cell is "
        "never asserted (unconfirmed). prior_without_probability: the prior of a statement that "
        "carries no probability (external findings), an even prior by choice.",
        "rule": " ".join(__doc__.split("Rule (stated in the file).")[1].split()),
        "derived_with": command,
        "seeds": {"fitting": _span(fit_rows), "heldout": _span(held_rows)},
        "error_models_sha256": error_model.sha256(),
        "probability_clip": clip,
        "prior_without_probability": PRIOR_WITHOUT_PROBABILITY,
        "conditions": conditions,
        "targets_met_on_heldout": met,
        "default_policy": "posterior" if met else "bands",
        "validation": validation,
        "per_condition": cells,
    }
    from reporter.grounding.policy import PolicyFile

    PolicyFile.model_validate(doc)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    args.plot_dir.mkdir(parents=True, exist_ok=True)
    (args.plot_dir / "evidence_policy.txt").write_text(text + "\n")
    panels: dict[str, dict[str, Any]] = {}
    for split, tab in tabs.items():
        panels[f"{split} validation phantoms ({n_studies[split]} studies)"] = {
            "allocation": [score(tab, c) for c in allocation],
            "global": global_curve(tab, conditions),
            "chosen": validation[split]["posterior"],
            "bands": {k: validation[split][k] for k in ("bands", "contradicted-only")},
        }
    (args.plot_dir / "tradeoff_validation.json").write_text(
        json.dumps({"clip": clip, "panels": panels}, indent=1) + "\n"
    )
    png = plot_curves(args.plot_dir / "tradeoff_validation.png", panels)
    print(f"\nwrote {args.out}, {args.plot_dir / 'evidence_policy.txt'}, {png}")


if __name__ == "__main__":
    main()

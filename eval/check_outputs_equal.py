"""Are two versions of the code giving the same reports? (speed work must not change results)

    python eval/check_outputs_equal.py make-studies DIR [--n 8] [--seed 710000]
    PYTHONPATH=OLD_TREE python eval/check_outputs_equal.py report DIR/studies A   # old code
    python eval/check_outputs_equal.py report DIR/studies B                       # this code
    python eval/check_outputs_equal.py compare A B

`make-studies` writes phantom studies with seeds outside every training and evaluation range
(`spine-report synth`, v1 engine at the four site profiles, plus two v2 studies: a full stack and
a single mid-sagittal slice, which goes through the 2-D image path). `report` reports each one
with whichever `reporter` is first on sys.path (it prints which) through
`reporter.report_study`, every output written; the first study is reported a second time with
`deidentify=True` and the second a second time on its phantom seg.dcm (the label-map import).

`compare` requires, for every report folder:
- findings.json and report.txt identical (report.txt, report.html and the SR's text may name
  the code version with or without its git commit: "0.1.0+g<sha>" is read as "0.1.0");
- report.html identical after the "started ... finished ..." line (times) is masked and each
  embedded PNG key image is read as its decoded pixels (the zlib level may change; the image
  may not);
- provenance.json identical apart from started_at, finished_at, timings_s and code_version;
- seg.dcm and report.sr.dcm identical element by element (pixel data included), where a time
  (TM, DT; ContentDate, InstanceCreationDate, SeriesDate) and the file meta group length (it
  follows from the new UIDs' lengths) may differ, and a UID may differ only
  as a consistent renaming: a UID made for this report (SOP instance, series, tracking UIDs...)
  must map one-to-one between the two versions in both files of a folder, so every reference
  between SR and SEG still points at the same object.
Exit 0 when everything matches; else every difference is listed and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

V1_SITES = ("site-a", "site-b", "site-c", "random")
_MASKED_DATES = {"ContentDate", "InstanceCreationDate", "SeriesDate"}
# Follows from the length of the new SOP Instance UID (generate_uid's length varies).
_MASKED_LENGTHS = {"FileMetaInformationGroupLength"}
_PROVENANCE_VOLATILE = ("started_at", "finished_at", "timings_s", "code_version")
_HTML_TIMES = re.compile(r"started [^<]* &middot; finished [^<]*</p>")
# The code version names the git commit in a checkout (0.1.0+g<sha>), not in an exported tree.
_GIT_SUFFIX = re.compile(r"(\d+\.\d+\.\d+)\+g[0-9a-f]{7,40}")


_PNG_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def _unversioned(text: str) -> str:
    return _GIT_SUFFIX.sub(r"\1", text)


def _png_pixels(match: re.Match[str]) -> str:
    """An embedded PNG replaced by a digest of its decoded pixels, mode and size."""
    import base64
    import hashlib
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    img.load()
    digest = hashlib.sha256(img.tobytes()).hexdigest()
    return f"png-pixels:{img.mode}:{img.size[0]}x{img.size[1]}:{digest}"


def _html_compared(path: Path) -> str:
    return _PNG_URI.sub(_png_pixels, _unversioned(_HTML_TIMES.sub("", path.read_text())))


def make_studies(root: Path, n: int, seed: int) -> None:
    """`n` v1 phantoms over the four site profiles, plus a v2 stack and a v2 single slice."""
    studies = root / "studies"
    cli = [sys.executable, "-c", "from reporter.cli import main; main()", "synth"]
    for i in range(n):
        out = studies / f"v1_{i:02d}"
        if out.exists():
            continue
        site = V1_SITES[i % len(V1_SITES)]
        cmd = [*cli, "--out", str(out), "--n", "1", "--seed", str(seed + i), "--site", site]
        subprocess.run(cmd, check=True, capture_output=True)
    for name, slices in (("v2_stack", "stack"), ("v2_mid", "mid")):
        out = studies / name
        if not out.exists():
            cmd = [*cli, "--out", str(out), "--n", "1", "--seed", str(seed + 100)]
            cmd += ["--engine", "v2", "--slices", slices]
            subprocess.run(cmd, check=True, capture_output=True)
    print(f"studies in {studies}: {len(list(studies.iterdir()))}")


def _jobs(studies: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    jobs: list[tuple[str, Path, dict[str, Any]]] = []
    for k, group in enumerate(sorted(p for p in studies.iterdir() if p.is_dir())):
        (phantom,) = sorted(p for p in group.iterdir() if p.is_dir())
        jobs.append((group.name, phantom / "dicom", {}))
        if k == 0:
            jobs.append((f"{group.name}-deid", phantom / "dicom", {"deidentify": True}))
        if k == 1:
            jobs.append((f"{group.name}-seg", phantom / "dicom", {"seg": phantom / "seg.dcm"}))
    return jobs


def report_all(studies: Path, out: Path) -> None:
    import reporter

    # Which code is this? (an editable install points at the working tree; PYTHONPATH wins)
    from reporter import pipeline

    print(f"reporter from {Path(pipeline.__file__).parent}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for name, study, kwargs in _jobs(studies):
        t = time.perf_counter()
        reporter.report_study(study, out_dir=out / name, **kwargs)
        print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)


def _compare_json(a: Path, b: Path, volatile: tuple[str, ...] = ()) -> list[str]:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    for key in volatile:
        da.pop(key, None)
        db.pop(key, None)
    if da == db:
        return []
    keys = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
    return [f"{a.name}: differs in {', '.join(keys)}"]


class _UidMap:
    """UIDs made per report may differ, but only as one consistent one-to-one renaming."""

    def __init__(self) -> None:
        self.ab: dict[str, str] = {}
        self.ba: dict[str, str] = {}

    def same(self, a: str, b: str) -> bool:
        if a == b and a not in self.ab and b not in self.ba:
            return True
        return self.ab.setdefault(a, b) == b and self.ba.setdefault(b, a) == a


def _compare_ds(a: Any, b: Any, uids: _UidMap, path: str, out: list[str]) -> None:
    tags = sorted(set(a.keys()) | set(b.keys()))
    for tag in tags:
        if tag not in a or tag not in b:
            out.append(f"{path}{tag}: present in one version only")
            continue
        ea, eb = a[tag], b[tag]
        where = f"{path}{ea.keyword or tag}"
        if ea.VR != eb.VR:
            out.append(f"{where}: VR {ea.VR} vs {eb.VR}")
        elif ea.VR == "SQ":
            if len(ea.value) != len(eb.value):
                out.append(f"{where}: {len(ea.value)} vs {len(eb.value)} items")
                continue
            for i, (ia, ib) in enumerate(zip(ea.value, eb.value, strict=True)):
                _compare_ds(ia, ib, uids, f"{where}[{i}]/", out)
        elif ea.VR in ("TM", "DT") or ea.keyword in _MASKED_DATES | _MASKED_LENGTHS:
            continue
        elif ea.VR == "UI":
            va = list(ea.value) if ea.VM > 1 else [ea.value]
            vb = list(eb.value) if eb.VM > 1 else [eb.value]
            if len(va) != len(vb) or not all(
                uids.same(str(x), str(y)) for x, y in zip(va, vb, strict=False)
            ):
                out.append(f"{where}: UID not a consistent renaming")
        elif ea.value != eb.value and not (
            isinstance(ea.value, str)
            and isinstance(eb.value, str)
            and _unversioned(ea.value) == _unversioned(eb.value)
        ):
            out.append(f"{where}: value differs")


def compare_folder(a: Path, b: Path) -> list[str]:
    import pydicom

    problems: list[str] = []
    names_a = sorted(p.name for p in a.iterdir())
    names_b = sorted(p.name for p in b.iterdir())
    if names_a != names_b:
        return [f"files differ: {names_a} vs {names_b}"]
    if (a / "findings.json").read_bytes() != (b / "findings.json").read_bytes():
        problems.append("findings.json: not byte-identical")
    if _unversioned((a / "report.txt").read_text()) != _unversioned((b / "report.txt").read_text()):
        problems.append("report.txt: differs")
    html_a, html_b = a / "report.html", b / "report.html"
    if html_a.exists() and _html_compared(html_a) != _html_compared(html_b):
        problems.append("report.html: differs (times masked, key images as pixels)")
    problems += _compare_json(a / "provenance.json", b / "provenance.json", _PROVENANCE_VOLATILE)
    uids = _UidMap()  # shared by SEG and SR: the SR's references to the SEG must stay right
    for name in ("seg.dcm", "report.sr.dcm"):
        if not (a / name).exists():
            continue
        da, db = pydicom.dcmread(a / name), pydicom.dcmread(b / name)
        found: list[str] = []
        _compare_ds(da.file_meta, db.file_meta, uids, f"{name}:meta/", found)
        _compare_ds(da, db, uids, f"{name}:", found)
        problems += found
    return problems


def compare(a_root: Path, b_root: Path) -> int:
    folders = sorted(p.name for p in a_root.iterdir() if p.is_dir())
    others = sorted(p.name for p in b_root.iterdir() if p.is_dir())
    bad = 0
    if folders != others:
        print(f"report folders differ: {folders} vs {others}")
        bad += 1
    for name in folders:
        if name not in others:
            continue
        problems = compare_folder(a_root / name, b_root / name)
        files = sorted(p.name for p in (a_root / name).iterdir())
        print(f"{name}: {'identical' if not problems else 'DIFFERENT'} ({len(files)} files)")
        for p in problems[:20]:
            print(f"    {p}")
        bad += bool(problems)
    print(f"{len(folders) - bad} of {len(folders)} report folders identical")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-studies")
    mk.add_argument("root", type=Path)
    mk.add_argument("--n", type=int, default=8)
    mk.add_argument("--seed", type=int, default=710_000)
    rp = sub.add_parser("report")
    rp.add_argument("studies", type=Path)
    rp.add_argument("out", type=Path)
    cp = sub.add_parser("compare")
    cp.add_argument("a", type=Path)
    cp.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "make-studies":
        make_studies(args.root, args.n, args.seed)
    elif args.cmd == "report":
        report_all(args.studies, args.out)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()

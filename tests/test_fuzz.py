"""The fuzz campaign (eval/fuzz.py, issue 20 item 1): a seeded 500-case subset through the command
line, and one regression test per defect it found, named after the kind and seed that found it
(`python eval/fuzz.py --case SEED` rebuilds that case)."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from reporter.errors import InputDataError
from reporter.ingest import load_study, scan
from reporter.ingest.dicom import MAX_INFLATED_BYTES
from reporter.ingest.image2d_read import read_image2d

EVAL = Path(__file__).resolve().parents[1] / "eval"
sys.path.insert(0, str(EVAL))
import fuzz  # noqa: E402
import fuzz_cases  # noqa: E402

# A child's ru_maxrss counts the resident size of the process it was forked from until its exec
# (the kernel keeps the old address space's high-water mark): forked from a pytest worker that has
# loaded the models it reads 1.3 GB whatever the command does. The command is therefore started
# by a fresh, small Python that reports its child's own peak.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "reporter.cli", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, flush=True)
"""


def _measured(*args: str, timeout: float = 120.0) -> tuple[int, list[str], float]:
    """`spine-report ARGS` as a user runs it: exit code, stderr lines, peak RSS in MB (the
    command's own, from wait4 in a small launcher)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail(f"spine-report {' '.join(args)} ran past {timeout} s")
    # The command's stdout goes to the launcher's: its last line is the launcher's report.
    code, maxrss_kb = (int(x) for x in out.decode().splitlines()[-1].split())
    return code, err.decode("utf-8", "replace").splitlines(), maxrss_kb / 1024


def _one_line_each(lines: list[str]) -> bool:
    return all(x.startswith(("spine-report: error: ", "spine-report: warning: ")) for x in lines)


def _slices(phantom_dir: Path, series: str) -> list[Path]:
    folder = next(p for p in sorted((phantom_dir / "dicom").iterdir()) if series in p.name)
    return sorted(folder.glob("*.dcm"))


# --- special_files, seed 3212: a named pipe in the study folder -----------------------------
def test_named_pipe_in_study_folder_is_skipped_not_waited_on_special_files_3212(
    phantom_dir: Path, tmp_path: Path
) -> None:
    """Opening a FIFO blocks until a writer comes: inspect and report hung until killed."""
    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    os.mkfifo(study / "pipe.dcm")
    os.symlink("/dev/zero", study / "zero.dcm")
    code, err, _ = _measured("inspect", str(study), timeout=60)
    assert code == 0
    assert "spine-report: warning: 2 special file(s) (pipes, devices, sockets) skipped" in err
    assert _one_line_each(err)


# --- deflate_bomb, seeds 3029 / 3098: a deflated file that inflates to gigabytes ------------
@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory, phantom_dir: Path) -> Path:
    """A deflated MR file inflating to just over the limit (600 MiB; the campaign also uses 4
    and 12 GiB), written as eval/fuzz_cases.py writes it."""
    root = tmp_path_factory.mktemp("bomb")
    shutil.copytree(phantom_dir / "dicom", root / f"study_{fuzz_cases.BASE_SEEDS[0][0]}")
    size_mib = 600
    assert size_mib << 20 > MAX_INFLATED_BYTES
    path = root / "bomb.dcm"
    path.write_bytes(fuzz_cases._deflate_bomb(root, size_mib))
    return path


@pytest.mark.parametrize("given", ["folder", "file"])
def test_deflate_bomb_is_skipped_without_inflating_it_deflate_bomb_3098(
    bomb: Path, tmp_path: Path, given: str
) -> None:
    """pydicom inflates a deflated dataset whole before reading an element: 2-5 GB of RSS in
    inspect and report, and exit 70 (MemoryError) where the 2-D path read the file (seed 3029)."""
    if given == "folder":
        (tmp_path / "study").mkdir()
        target = tmp_path / "study" / "bomb.dcm"
    else:
        target = tmp_path / "bomb.dcm"
    shutil.copy(bomb, target)
    arg = str(target.parent if given == "folder" else target)
    for command in (["inspect", arg], ["report", arg, "--out", str(tmp_path / "out")]):
        code, err, rss_mb = _measured(*command)
        assert code == 65, err
        assert _one_line_each(err) and len([x for x in err if "error:" in x]) == 1
        assert rss_mb < 500, f"{command[0]} peaked at {rss_mb:.0f} MB"
    assert not (tmp_path / "out").exists()


# --- compressed_corrupt, seed 3100 (and 1017, 2024): C decoders printing on stderr ----------
@pytest.mark.parametrize(
    ("syntax", "stream"),
    [
        (JPEGBaseline8Bit, b"\xff\x4f\xff\x51" + bytes(200)),  # GDCM's libjpeg: "Not a JPEG file"
        (JPEG2000Lossless, b"\x00\x01\x02\x03" + bytes(200)),  # OpenJPEG: "Expected a SOC marker"
    ],
)
def test_decoder_messages_from_c_libraries_stay_off_stderr_compressed_corrupt_3100(
    phantom_dir: Path, tmp_path: Path, syntax: str, stream: bytes
) -> None:
    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    damaged = _slices(phantom_dir, "sag_t1")[0].relative_to(phantom_dir / "dicom")
    ds = pydicom.dcmread(study / damaged)
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(study / damaged, enforce_file_format=True)
    code, err, _ = _measured("inspect", str(study))
    assert code == 0
    assert _one_line_each(err), err
    assert any("1 damaged image(s) left out" in x for x in err)


# --- single_file, seed 2008: a lone slice with a multi-valued rescale ----------------------
@pytest.mark.parametrize(
    ("keyword", "raw"),
    [
        ("RescaleIntercept", b"1\\2\\3 "),  # seed 2008: TypeError, exit 70
        ("RescaleSlope", b"-inf"),
        ("NumberOfFrames", b"abc "),
        ("PixelSpacing", b"nan\\1 "),
        ("Rows", None),  # a damaged US value: the size check refuses it, nothing else raises
    ],
)
def test_single_dicom_file_with_damaged_header_values_is_read_or_refused_single_file_2008(
    phantom_dir: Path, tmp_path: Path, keyword: str, raw: bytes | None
) -> None:
    ds = pydicom.dcmread(_slices(phantom_dir, "sag_t2")[7])
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag)
    value = raw if raw is not None else b"\x01"
    ds[tag] = pydicom.dataelem.RawDataElement(
        pydicom.tag.Tag(tag), vr, len(value), value, 0, False, True
    )
    path = tmp_path / "image.dcm"
    ds.save_as(path, enforce_file_format=False)
    try:
        image = read_image2d(path)
    except InputDataError:  # a refusal is fine where pixels cannot be decoded; not exit 70
        assert keyword in ("Rows", "NumberOfFrames")
        return
    assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all()
    if keyword == "PixelSpacing":
        assert "pixel_spacing_mm" not in image.header  # estimated from anatomy instead


# --- nifti_hostile, seed 3087: a voxel 1e30 mm wide -----------------------------------------
def test_nifti_with_absurd_voxel_size_is_refused_nifti_hostile_3087(tmp_path: Path) -> None:
    """pixdim 1e30 passed the finite / non-singular affine check and ended in exit 70 (TypeError
    in the segmenter's resampling)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ones((8, 40, 40), np.int16), np.diag([4.0, 1e30, 0.9, 1.0]))
    path = tmp_path / "volume.nii.gz"
    nib.save(img, str(path))
    with pytest.raises(InputDataError, match="voxel size"):
        load_study(path)


def test_dicom_series_with_absurd_pixel_spacing_is_set_aside_absurd_geometry(
    phantom_dir: Path, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    for path in sorted(study.glob("*sag_t1*/*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [1e30, 1e30]
        ds.save_as(path)
    rows = [r for r in scan(study).rows if r.description and "t1" in r.description.lower()]
    assert rows and not rows[0].usable and "voxel size" in (rows[0].problem or "")


# --- mixed_studies, seed 3111: one series in two frames of reference ------------------------
def test_series_in_two_frames_of_reference_is_set_aside_mixed_studies_3111(
    phantom_dir: Path, tmp_path: Path
) -> None:
    """report ended in exit 70 (ValueError from highdicom writing a SEG on such a series)."""
    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    other = pydicom.uid.generate_uid()
    t1 = sorted(study.glob("*sag_t1*/*.dcm"))
    for path in t1[: len(t1) // 2]:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = other
        ds.save_as(path)
    inv = scan(study)
    aside = [r for r in inv.rows if not r.usable]
    assert [r.problem for r in aside] == ["images in 2 frames of reference"]
    assert inv.study is not None
    assert any("frames of reference" in x for x in inv.study.limitations)


# --- wrong_vr, seeds 5005 / 5032 / 5045: header values written with another VR ------------
def _relabel_vr(path: Path, keyword: str, vr: bytes) -> None:
    """Overwrite the VR code of one element, the file first written as explicit VR little endian
    (the phantom's site writes implicit VR under an explicit transfer syntax, as some do)."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, implicit_vr=False, little_endian=True)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    start, _ = fuzz_cases._element_headers(path)[tag]
    data = bytearray(path.read_bytes())
    data[start + 4 : start + 6] = vr
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("series", "which", "keyword", "vr", "stated"),
    [
        ("sag_t2", "all", "SOPClassUID", b"DA", "could not be used"),  # 5005: KeyError in SEG
        ("ax_t2", "all", "PixelSpacing", b"FL", "could not be used"),  # 5045: in SR / SEG
        ("sag_t2", "one", "PixelSpacing", b"FL", "1 damaged image(s) left out"),
        # 110308: Modality as SS was dropped from the header; the SR's library read it
        ("ax_t2", "all", "Modality", b"SS", "could not be used"),
    ],
)
def test_images_whose_headers_have_wrong_vrs_are_left_out_and_the_report_written_wrong_vr_5005(
    phantom,
    phantom_dir: Path,
    tmp_path: Path,
    series: str,
    which: str,
    keyword: str,
    vr: bytes,
    stated: str,
) -> None:
    """A value written under another VR (SOPClassUID as DA reads as '') reached the SEG and SR
    writers: exit 70 (KeyError, TypeError, BytesLengthException from highdicom / pydicom)."""
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    slices = sorted(study.glob(f"*{series}*/*.dcm"))
    for path in slices if which == "all" else slices[-1:]:
        _relabel_vr(path, keyword, vr)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert any(stated in x and "wrong VR" in x for x in report.limitations), report.limitations
    assert (tmp_path / "out" / "report.sr.dcm").is_file()


@pytest.mark.parametrize(
    ("keyword", "vr"),
    [("PatientName", b"LO"), ("EchoTime", b"LO"), ("SeriesDescription", b"SH")],
)
def test_other_attributes_of_the_wrong_vr_are_dropped_not_the_images_wrong_vr(
    phantom, phantom_dir: Path, tmp_path: Path, keyword: str, vr: bytes
) -> None:
    """Only the attributes the stack, its geometry and the SEG / SR references are built from
    make an image unusable; one written by older software under a neighbouring VR (PatientName as
    LO) is left out of the header, and the series is reported whole."""
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    for path in sorted(study.glob("*sag_t2*/*.dcm")):
        _relabel_vr(path, keyword, vr)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert not any("wrong VR" in x or "left out" in x for x in report.limitations)
    assert not any("could not be used" in x for x in report.limitations), report.limitations
    assert (tmp_path / "out" / "report.sr.dcm").is_file()


def test_header_damage_names_only_essential_attributes_of_the_wrong_vr() -> None:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    from reporter.ingest import fastread

    def header(sop_class_vr: str) -> Dataset:
        ds = Dataset()
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            setattr(ds, keyword, "1.2.3")
        ds.FrameOfReferenceUID = "1.2.3"
        ds.Modality, ds.PhotometricInterpretation = "MR", "MONOCHROME2"
        ds.add(DataElement(0x00080016, sop_class_vr, "1.2.840.10008.5.1.4.1.1.4"))
        ds.add(DataElement(0x00181020, "US", 5))  # SoftwareVersions (LO)
        return ds

    damaged = header("DA")  # SOPClassUID as DA
    assert fastread.wrong_vrs(damaged) == ["SOPClassUID"]
    assert "SOPClassUID" in (fastread.vet_header(damaged) or "")
    assert 0x00181020 in damaged  # a damaged image is left out whole: nothing dropped
    usable = header("UI")
    assert fastread.vet_header(usable) is None
    assert 0x00181020 not in usable and 0x00080016 in usable


def test_a_multi_valued_study_uid_is_a_damaged_header_duplicate_uids_100480(
    phantom_dir: Path, tmp_path: Path
) -> None:
    """StudyInstanceUID '1.2.3\\4.5' in every image: highdicom's SEG hashed the value list
    (exit 70, TypeError). The series are set aside with the reason: one line, exit 65."""
    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    for path in sorted(study.glob("*/*.dcm")):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = ["1.2.3", "4.5"]
        ds.save_as(path)
    code, err, _ = _measured("report", str(study), "--out", str(tmp_path / "out"))
    assert code == 65 and len(err) == 1, err
    assert "several values in StudyInstanceUID" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        # 100736: int(float('1e999')) raised OverflowError (exit 70)
        ("wl.csv", "study,priority\nx,1e999\n", "priority '1e999' is neither"),
        # 100674: a JSON line nested thousands deep made the decoder recurse (RecursionError)
        ("wl.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "JSON nested too deeply"),
        # 102003: Path.resolve raised ValueError (embedded null byte)
        ("wl.csv", "study\na\x00b\n", "holds a NUL character"),
        # 109817: a JSON '\ud800' (a lone surrogate) cannot be encoded as a file name
        ("wl.jsonl", '{"study": "\\ud800"}\n', "not a valid file name"),
    ],
    # (short ids: a 200 kB test id in the environment made exec fail with E2BIG)
    ids=["infinite-priority", "deep-json", "nul-in-path", "lone-surrogate"],
)
def test_worklist_with_an_infinite_priority_or_deep_json_is_one_usage_line_worklist_100736(
    tmp_path: Path, name: str, content: str, said: str
) -> None:
    from reporter.errors import UsageError
    from reporter.worklist import read_worklist

    wl = tmp_path / name
    wl.write_text(content)
    with pytest.raises(UsageError, match=said):
        read_worklist(wl)
    code, err, _ = _measured("batch", str(wl), "--out", str(tmp_path / "out"))
    assert code == 64 and len(err) == 1 and said in err[0], err


# --- missing_type1, seed 6107: an image without a UID the SEG or SR must reference -----------
@pytest.mark.parametrize(
    ("series", "keyword"),
    [
        ("ax_t2", "SOPClassUID"),  # 6107: AttributeError in the SR writer
        ("sag_t2", "FrameOfReferenceUID"),  # ValueError from highdicom's SEG
        ("sag_t2", "SeriesInstanceUID"),  # AttributeError
    ],
)
def test_images_without_a_reference_uid_are_left_out_and_the_report_written_missing_type1_6107(
    phantom, phantom_dir: Path, tmp_path: Path, series: str, keyword: str
) -> None:
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    for path in sorted(study.glob(f"*{series}*/*.dcm")):
        ds = pydicom.dcmread(path)
        delattr(ds, keyword)
        ds.save_as(path)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert any(f"no {keyword}" in x for x in report.limitations), report.limitations
    assert (tmp_path / "out" / "seg.dcm").is_file()


def test_an_image_without_modality_is_left_out_not_passed_to_the_sr_missing_type1_102977(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    """Modality and PhotometricInterpretation removed from some images of an MR series: the SR's
    image library read ds.Modality (exit 70, AttributeError in highdicom)."""
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    path = sorted(study.glob("*sag_t1*/*.dcm"))[-1]
    ds = pydicom.dcmread(path)
    del ds.Modality, ds.PhotometricInterpretation
    ds.save_as(path)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert any("no Modality" in x for x in report.limitations), report.limitations
    assert (tmp_path / "out" / "report.sr.dcm").is_file()


# --- absurd_geometry, seeds 7065 / 7089: a slice thickness that is not a number -------------
@pytest.mark.parametrize(("seed", "value"), [(7065, b"abc "), (7089, b"nan ")])
def test_slice_thickness_that_is_no_number_is_a_damaged_header_absurd_geometry_7065(
    phantom, phantom_dir: Path, tmp_path: Path, seed: int, value: bytes
) -> None:
    """highdicom's SEG copies SliceThickness from its source images: exit 70 (ValueError)."""
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    for path in sorted(study.glob("*sag_t2*/*.dcm")):
        ds = pydicom.dcmread(path)
        ds[0x00180050] = pydicom.dataelem.RawDataElement(
            pydicom.tag.Tag(0x00180050), "DS", len(value), value, 0, False, True
        )
        ds.save_as(path)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert any("SliceThickness not a number" in x for x in report.limitations), seed
    assert (tmp_path / "out" / "seg.dcm").is_file()


# --- absurd_geometry, seed 133601: a slice thickness with several values -------------------
def test_slice_thickness_with_several_values_is_a_damaged_header_absurd_geometry_133601(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    """'1\\2\\3' passed the number check and reached highdicom's SEG as a list: exit 70
    (TypeError in pydicom's DS). Damaged when one slice has it; the rest of the series is used."""
    import reporter

    study = tmp_path / "study"
    shutil.copytree(phantom_dir / "dicom", study)
    path = sorted(study.glob("*sag_t2*/*.dcm"))[0]
    ds = pydicom.dcmread(path)
    ds.SliceThickness = ["1", "2", "3"]
    ds.save_as(path)
    report = reporter.report_study(
        study, out_dir=tmp_path / "out", seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )
    assert any("several values in SliceThickness" in x for x in report.limitations), (
        report.limitations
    )
    assert (tmp_path / "out" / "seg.dcm").is_file()


# --- nifti_hostile, seed 6094: a gzipped NIfTI of 1 GiB of zeros ----------------------------
def test_nifti_bomb_is_refused_from_its_header_nifti_hostile_6094(tmp_path: Path) -> None:
    """The volume was read whole (1 GiB) and converted to float32: exit 70 (MemoryError) and
    1.7 GB of RSS under the fuzz's address-space limit."""
    path = tmp_path / "volume.nii.gz"
    path.write_bytes(fuzz_cases._nifti_bomb())
    with pytest.raises(InputDataError, match="beyond the size limit"):
        load_study(path)
    code, err, rss_mb = _measured("inspect", str(path))
    assert code == 65 and len(err) == 1
    assert rss_mb < 500, f"inspect peaked at {rss_mb:.0f} MB"


# --- empty_input (odd_name), special_files: control characters in a path --------------------
@pytest.mark.parametrize("name", ["line\nbreak", "esc\x1b[2Jclear", "sep\u2028x"])
def test_a_newline_or_escape_in_a_folder_name_stays_inside_one_error_line_empty_input(
    tmp_path: Path, name: str
) -> None:
    """The refusal quoted the path raw: a newline split the error over two lines (and an escape
    sequence reached the terminal)."""
    study = tmp_path / name
    study.mkdir()
    (study / "a.dcm").write_bytes(b"junk")
    for command in (["inspect", str(study)], ["report", str(study), "--out", str(tmp_path / "o")]):
        code, err, _ = _measured(*command)
        assert code == 65
        assert len(err) == 1 and err[0].startswith("spine-report: error: no MR images found")
        assert "\x1b" not in err[0] and "\u2028" not in err[0]


# --- every rejecting kind: refused before torch is imported --------------------------------
@pytest.mark.parametrize("what", ["junk_folder", "truncated_png", "damaged_single_dicom"])
def test_report_refuses_an_unusable_input_before_importing_torch_empty_input(
    phantom_dir: Path, tmp_path: Path, what: str
) -> None:
    """report imported torch and the VLM (6-8 s, ~1 GB) before reading the input: every
    rejected input cost that; inspect rejected the same input in half a second."""
    if what == "junk_folder":
        (tmp_path / "study").mkdir()
        (tmp_path / "study" / "a.dcm").write_text("not dicom")
        target = tmp_path / "study"
    elif what == "truncated_png":
        data = fuzz_cases._png_bytes(np.full((64, 64), 100, np.uint8))
        target = tmp_path / "image.png"
        target.write_bytes(data[:60])
    else:
        target = tmp_path / "image.dcm"
        target.write_bytes(_slices(phantom_dir, "sag_t2")[0].read_bytes()[:2000])
    probe = (
        "import sys\n"
        "from reporter.cli import main\n"
        "try:\n"
        f"    main(['report', {str(target)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["65", "False"], proc.stderr


# --- the campaign --------------------------------------------------------------------------
@pytest.mark.slow
def test_fuzz_500_cases_no_internal_error_hang_memory_blowup_or_stray_stderr(
    tmp_path: Path,
) -> None:
    """500 seeded cases of every kind through inspect (all), report (every rejection, every
    single file and PNG, 1 in 50 of the rest) and batch (worklists), 2 workers. Limits: 30 s
    per inspect, 150 s per report or batch; address space 3 / 6 / 8 GiB above the worker's."""
    opts = fuzz.options(
        ["--n", "500", "--seed", "20000", "--workers", "2", "--report-every", "50",
         "--timeout-scale", "0.5", "--work", str(tmp_path)]
    )  # fmt: skip
    summary = fuzz.campaign(opts, progress=False)
    assert summary["n"] == 500
    assert summary["failures"] == [], "\n".join(f["line"] for f in summary["failures"])
    assert summary["internal_errors"] == 0 and summary["hangs"] == 0
    assert set(summary["by_kind"]) == set(fuzz_cases.KINDS)


def test_fuzz_cases_are_reproducible_from_their_seed(tmp_path: Path, phantom_dir: Path) -> None:
    bases = fuzz_cases.Bases(root=tmp_path, studies=[phantom_dir / "dicom"] * 2)
    written = []
    for run in ("a", "b"):
        dest = tmp_path / run
        dest.mkdir()
        case = fuzz_cases.bit_flips(random.Random(77), bases, dest)
        written.append([p.read_bytes() for p in sorted(case.target.rglob("*.dcm"))])
    assert written[0] == written[1]


def test_fuzz_judges_a_traceback_a_second_error_line_and_a_stray_line(tmp_path: Path) -> None:
    limits = fuzz.RSS_LIMIT_MB
    ok = fuzz.Run("inspect", 65, 0.1, 10.0, ["spine-report: error: no MR images found in x"])
    assert fuzz.judge(ok, limits) == []
    trace = fuzz.Run("report", 70, 0.1, 10.0, ["Traceback (most recent call last):", "  x"])
    assert "internal error" in fuzz.judge(trace, limits)
    assert "traceback on stderr" in fuzz.judge(trace, limits)
    stray = fuzz.Run("inspect", 0, 0.1, 10.0, ["Not a JPEG file: starts with 0xff 0x4f"])
    assert fuzz.judge(stray, limits) == ["stderr line that is not one error or warning line"]
    two = fuzz.Run("report", 65, 0.1, 10.0, ["spine-report: error: a", "spine-report: error: b"])
    assert fuzz.judge(two, limits) == ["rejected with 2 error lines"]
    hang = fuzz.Run("report", None, 300.0, 10.0, [], hang=True)
    assert fuzz.judge(hang, limits) == ["hang (killed after 300 s)"]
    big = fuzz.Run("inspect", 0, 1.0, 5000.0, [])
    assert fuzz.judge(big, limits) == ["memory blow-up (5000 MB)"]


def test_png_chunks_written_by_the_fuzzer_are_valid(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "x.png"
    path.write_bytes(fuzz_cases._png_bytes(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)))
    with Image.open(path) as im:
        assert im.size == (64, 64)
    assert struct.unpack(">I", path.read_bytes()[16:20])[0] == 64

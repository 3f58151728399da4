"""DICOMweb: pull a study from a PACS (QIDO-RS / WADO-RS), push reports back (STOW-RS).

    from reporter.dicomweb import parse_study_url, fetch_study, push_outputs
    loc = parse_study_url("dicomweb+http://127.0.0.1:8042/dicom-web/studies/1.2.3")
    fetch_study(loc, "incoming/")                # the study's MR series as DICOM files
    push_outputs(loc.server, "out/")             # report.sr.dcm + seg.dcm back to its study

URLs (`urls.py`): `dicomweb://` is HTTPS, `dicomweb+https://` too, `dicomweb+http://` plain HTTP
(`http://` and `https://` are taken as they are). Credentials come from the environment or a
netrc file, never from the URL; TLS certificates are verified unless switched off by an
environment variable (`connection.py`). Every failure is one `ReporterError`: the server cannot
be reached or fails (exit 69), refuses our credentials (77), or has no such study (66).

`reporter.report_study(url)` and `spine-report report URL` pull through here
(reporter.ingest.load_study); watch mode (reporter.watch) polls with `search_mr_studies`.
"""

from __future__ import annotations

from reporter.dicomweb.pull import fetch_study, fetched_study
from reporter.dicomweb.push import push_outputs
from reporter.dicomweb.query import StudyListing, search_mr_studies
from reporter.dicomweb.urls import (
    ServerLocation,
    StudyLocation,
    is_dicomweb_url,
    parse_server_url,
    parse_study_url,
)

__all__ = [
    "ServerLocation",
    "StudyListing",
    "StudyLocation",
    "fetch_study",
    "fetched_study",
    "is_dicomweb_url",
    "parse_server_url",
    "parse_study_url",
    "push_outputs",
    "search_mr_studies",
]

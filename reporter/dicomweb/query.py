"""QIDO-RS: the MR studies on a server, each with its number of instances (watch mode polls it).

Only the attributes named here are asked for and kept: a QIDO reply also carries the patient's
name and ID, which nothing here reads or stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reporter.dicomweb.connection import connect, translated
from reporter.dicomweb.urls import ServerLocation
from reporter.errors import UsageError

STUDY_UID = "0020000D"
MODALITIES_IN_STUDY = "00080061"
N_STUDY_INSTANCES = "00201208"
STUDY_DATE = "00080020"
PAGE = 500  # studies per QIDO request
MAX_PAGES = 200  # 100,000 studies: narrow the search with `since` long before this
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class StudyListing:
    study_uid: str
    n_instances: int | None  # NumberOfStudyRelatedInstances; None when the server omits it
    modalities: tuple[str, ...] = ()


def _value(item: dict[str, Any], tag: str) -> list[Any]:
    return list((item.get(tag) or {}).get("Value") or [])


def check_date(since: str | None) -> str | None:
    if since is None:
        return None
    text = since.strip().replace("-", "")
    if not _DATE.match(text):
        raise UsageError(f"--since must be a date YYYYMMDD (or YYYY-MM-DD), not {since!r}")
    return text


def _listing(item: dict[str, Any]) -> StudyListing | None:
    uids = _value(item, STUDY_UID)
    if not uids:
        return None
    modalities = tuple(str(m) for m in _value(item, MODALITIES_IN_STUDY))
    # A server that ignores the filter (some do for ModalitiesInStudy) is filtered here.
    if modalities and "MR" not in modalities:
        return None
    counts = _value(item, N_STUDY_INSTANCES)
    n = int(counts[0]) if counts and str(counts[0]).strip() != "" else None
    return StudyListing(str(uids[0]), n, modalities)


def search_mr_studies(
    server: ServerLocation,
    *,
    since: str | None = None,
    study_description: str | None = None,
    client: Any = None,
) -> list[StudyListing]:
    """Every study with an MR series (ModalitiesInStudy=MR), from `since` (YYYYMMDD) on, whose
    StudyDescription matches `study_description` (QIDO wildcards `*` and `?`) when given."""
    filters: dict[str, Any] = {"ModalitiesInStudy": "MR"}
    day = check_date(since)
    if day:
        filters["StudyDate"] = f"{day}-"
    if study_description:
        filters["StudyDescription"] = study_description
    client = client or connect(server)
    out: dict[str, StudyListing] = {}
    seen: set[str] = set()
    # Page by hand: the client's own paging asks until a page comes back empty, which never
    # happens on a server that ignores `offset`; here a page without new studies ends it too.
    for page in range(MAX_PAGES):
        with translated(server, "QIDO-RS study search"):
            found = client.search_for_studies(
                search_filters=filters,
                fields=["NumberOfStudyRelatedInstances", "ModalitiesInStudy"],
                limit=PAGE,
                offset=page * PAGE,
            )
        found = found or []
        before = len(seen)
        for item in found:
            seen.update(str(u) for u in _value(item, STUDY_UID))
            listing = _listing(item)
            if listing is not None:
                out[listing.study_uid] = listing
        if len(found) < PAGE or len(seen) == before:
            break
    return sorted(out.values(), key=lambda s: s.study_uid)

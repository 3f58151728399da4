"""Site profiles are data (reporter/synth/sites.json), validated on load: the shipped file
passes, and an unknown or missing key is an error naming it."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest
from pydantic import ValidationError

from reporter.synth import sites


def _shipped() -> dict:
    return json.loads((resources.files("reporter.synth") / "sites.json").read_text("utf-8"))


def test_shipped_sites_file_gives_the_named_sites() -> None:
    assert set(sites.SITES) == {"site-a", "site-b", "site-c", "random"}
    assert sites.NEW_SITE not in sites.TRAINING_SITES
    assert sites.SITES["random"].domain_randomized and not sites.SITES["site-a"].domain_randomized


def test_unknown_site_key_is_an_error_naming_it() -> None:
    doc = copy.deepcopy(_shipped())
    doc["sites"]["site-a"]["snr_t3"] = 10.0
    with pytest.raises(ValidationError, match="snr_t3"):
        sites._SitesFile.model_validate(doc)


def test_missing_site_key_is_an_error_naming_it() -> None:
    doc = copy.deepcopy(_shipped())
    del doc["sites"]["site-c"]["sag_fov"]
    with pytest.raises(ValidationError, match="sag_fov"):
        sites._SitesFile.model_validate(doc)

"""Versioned prompt templates (prompts/*.json): loaded from the package, hashed for provenance."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from reporter.errors import ModelFileError
from reporter.resources import resource_dir

_IMAGE = re.compile(r"<image:([a-z_]+)>")


@dataclass(frozen=True)
class Piece:
    """A stretch of prompt: text to tokenize, or the name of a view whose tokens go here."""

    text: str | None = None
    view: str | None = None


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    sha256: str
    study: str
    level: str
    slot: str
    separator: str
    not_assessable: str

    @classmethod
    def load(cls, name: str) -> PromptTemplate:
        path = Path(name) if Path(name).is_absolute() else resource_dir("prompts") / name
        if not path.is_file():
            raise ModelFileError(f"prompt template {name!r} not found in {path.parent}")
        raw = path.read_bytes()
        data = json.loads(raw)
        return cls(
            version=data["version"],
            sha256=hashlib.sha256(raw).hexdigest(),
            study=data["study"],
            level=data["level"],
            slot=data["slot"],
            separator=data["separator"],
            not_assessable=data["not_assessable"],
        )

    def pieces(self, level: str | None) -> list[Piece]:
        """The prompt of one sequence split into text and image pieces (None = the study one)."""
        template = self.study if level is None else self.level.replace("{level}", level)
        out: list[Piece] = []
        pos = 0
        for m in _IMAGE.finditer(template):
            if m.start() > pos:
                out.append(Piece(text=template[pos : m.start()]))
            out.append(Piece(view=m.group(1)))
            pos = m.end()
        if pos < len(template):
            out.append(Piece(text=template[pos:]))
        return out

    def views(self, level: str | None) -> list[str]:
        return [p.view for p in self.pieces(level) if p.view is not None]

    def words(self) -> set[str]:
        """Every word the templates can produce (for building the default vocabulary)."""
        text = " ".join([_IMAGE.sub(" ", self.study), _IMAGE.sub(" ", self.level)])
        text += f" {self.slot} {self.separator} {self.not_assessable}"
        return set(re.findall(r"\w+|[^\w\s]+", text.replace("{level}", " ").replace("{name}", " ")))

"""Schema-constrained decoding: one generic grammar derived from the pydantic finding schema.

Nothing here knows about particular fields. `SchemaGrammar` reads a pydantic model
(LevelFindings or StudyLevelFindings): every field annotated with a `Finding` subclass becomes a
value *slot* whose vocabulary is the Literal of its `value` (the same thing
`reporter.contracts.findings.field_values` returns), and every extra field of that Finding class
(herniation `zone`, spondylolisthesis `direction`) becomes a qualifier slot. Which values a slot
may take *given what was decoded before* is decided by asking pydantic itself: a candidate is
allowed when the partly decoded object still validates (so "bulge" is ruled out after
disc_bulging=false, and a protrusion cannot skip its zone). The token-level constraint is a
prefix trie over each allowed value's token ids, so any tokenizer works, and the output
validates for any weights, untrained ones included.

A field's probability is the model's probability of the chosen value among the allowed values: a
softmax over the allowed continuations at each step (temperature-scaled per field after
calibration), multiplied along the value's tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, get_args

import torch
from pydantic import BaseModel, ValidationError

from reporter.contracts.findings import Finding, LevelFindings, StudyLevelFindings
from reporter.vlm.prompt import PromptTemplate
from reporter.vlm.tokenizer import SpineTokenizer

NA = "na"  # the value text of a slot that is not assessable / a qualifier that does not apply
_FINDING_META = ("value", "probability", "not_assessable")


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    inner = next(a for a in get_args(annotation) if a is not type(None))
    if inner is bool:
        return (False, True)
    return get_args(inner)


def value_text(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Slot:
    field: str  # the schema field (e.g. "herniation")
    qualifier: str | None  # None for the finding's value, else the sub-field (e.g. "zone")
    values: tuple[Any, ...]  # what the schema allows (NA comes on top)

    @property
    def name(self) -> str:
        return self.field if self.qualifier is None else f"{self.field}_{self.qualifier}"


@dataclass
class SchemaGrammar:
    """The slots of one pydantic findings model, in schema order, with a validity oracle."""

    model: type[BaseModel]
    fields: tuple[str, ...]
    slots: list[Slot] = field(init=False)

    def __post_init__(self) -> None:
        self.slots = []
        for name in self.fields:
            cls = self.finding_class(name)
            self.slots.append(
                Slot(name, None, _literal_values(cls.model_fields["value"].annotation))
            )
            for q, info in cls.model_fields.items():
                if q not in _FINDING_META:
                    self.slots.append(Slot(name, q, _literal_values(info.annotation)))
        self._cache: dict[Any, tuple[Any, ...]] = {}

    def finding_class(self, name: str) -> type[Finding[Any]]:
        ann = self.model.model_fields[name].annotation
        if not (isinstance(ann, type) and issubclass(ann, Finding)):
            raise TypeError(f"field {name!r} of {self.model.__name__} is not a Finding")
        return ann

    # -- the validity oracle ------------------------------------------------------------------
    def _placeholder(self) -> dict[str, Any]:
        base: dict[str, Any] = {f: {"not_assessable": "pending"} for f in self.fields}
        if "level" in self.model.model_fields:
            base["level"] = "L4-L5"
        return base

    def _valid(self, decided: dict[str, dict[str, Any]]) -> bool:
        try:
            self.model.model_validate({**self._placeholder(), **decided})
        except ValidationError:
            return False
        return True

    def allowed(self, index: int, decided: dict[str, dict[str, Any]]) -> tuple[Any, ...]:
        """Values slot `index` may take after `decided` (field -> finding dict). NA is None.

        A value slot's candidates are checked against each decided field in turn (pairs are
        memoised, so decoding stays fast); the schema's cross-field rules relate two fields, and
        the assembled object is validated in full at the end anyway.
        """
        slot = self.slots[index]
        if slot.qualifier is None:
            return tuple(
                v
                for v in self._alone(index)
                if all(self._pair_ok(index, v, f, d) for f, d in decided.items() if f != slot.field)
            )
        current = decided.get(slot.field)
        key = (index, str(current))
        if key not in self._cache:
            if current is None or "not_assessable" in current:
                out: tuple[Any, ...] = (None,)  # the finding was not assessed: no qualifiers
            else:
                # "Does not apply" when the finding validates without it, and every value it
                # validates with.
                out = tuple(
                    q
                    for q in (None, *slot.values)
                    if self._valid({slot.field: {**current, slot.qualifier: q}})
                )
            self._cache[key] = out
        return self._cache[key]

    def _qualifiers(self, name: str) -> list[Slot]:
        return [s for s in self.slots if s.field == name and s.qualifier]

    def _alone(self, index: int) -> tuple[Any, ...]:
        key = ("alone", index)
        if key not in self._cache:
            slot = self.slots[index]
            quals = self._qualifiers(slot.field)
            self._cache[key] = tuple(
                v for v in slot.values if self._value_possible(slot.field, v, quals, {})
            )
        return self._cache[key]

    def _pair_ok(self, index: int, value: Any, other: str, finding: dict[str, Any]) -> bool:
        key = ("pair", index, value, other, str(sorted(finding.items(), key=str)))
        if key not in self._cache:
            slot = self.slots[index]
            other_clean = {k: v for k, v in finding.items() if k != "probability"}
            self._cache[key] = self._value_possible(
                slot.field, value, self._qualifiers(slot.field), {other: other_clean}
            )
        return bool(self._cache[key])

    def _value_possible(
        self, name: str, value: Any, qualifiers: list[Slot], decided: dict[str, dict[str, Any]]
    ) -> bool:
        # A value is possible if some choice of its qualifiers makes the object valid.
        options: list[dict[str, Any]] = [{}]
        for q in qualifiers:
            options = [{**o, q.qualifier: v} for o in options for v in (None, *q.values)]  # type: ignore[misc]
        return any(self._valid({**decided, name: {"value": value, **o}}) for o in options)


LEVEL_GRAMMAR_FIELDS = tuple(f for f in LevelFindings.model_fields if f != "level")
STUDY_GRAMMAR_FIELDS = tuple(
    f for f, i in StudyLevelFindings.model_fields.items() if "Finding" in str(i.annotation)
)


def level_grammar() -> SchemaGrammar:
    return SchemaGrammar(LevelFindings, LEVEL_GRAMMAR_FIELDS)


def study_grammar() -> SchemaGrammar:
    return SchemaGrammar(StudyLevelFindings, STUDY_GRAMMAR_FIELDS)


# -- token level ------------------------------------------------------------------------------
class TokenTrie:
    """Prefix tree over the token ids of a slot's allowed values."""

    def __init__(self, encoded: dict[Any, list[int]]) -> None:
        self.root: dict[int, Any] = {}
        self.terminal: dict[int, Any] = {}  # id(node) -> value once the value is complete
        for value, ids in encoded.items():
            if not ids:
                raise ValueError(f"value {value!r} encodes to no tokens")
            node = self.root
            for t in ids:
                node = node.setdefault(t, {})
            if node or id(node) in self.terminal:
                raise ValueError(f"value {value!r} is a token prefix of another value")
            self.terminal[id(node)] = value

    @property
    def single_token(self) -> bool:
        return all(id(child) in self.terminal for child in self.root.values())


@dataclass
class SequenceSpec:
    """What the decoder must produce for one sequence: the grammar and per-field NA reasons."""

    grammar: SchemaGrammar
    not_assessable: dict[str, str]  # field -> reason; those slots are forced to NA


@dataclass
class SlotResult:
    value: Any
    probability: float
    distribution: dict[Any, float] | None = None  # over allowed values (single-token values)


class Constraint:
    """Builds forced text and tries for a grammar under a tokenizer and prompt template."""

    def __init__(self, tokenizer: SpineTokenizer, template: PromptTemplate) -> None:
        self.tok = tokenizer
        self.template = template
        self._tries: dict[Any, TokenTrie] = {}

    def value_ids(self, value: Any) -> list[int]:
        return self.tok.encode(" " + value_text(value))

    def trie(self, values: tuple[Any, ...]) -> TokenTrie:
        key = tuple(value_text(v) for v in values)
        if key not in self._tries:
            self._tries[key] = TokenTrie({v: self.value_ids(v) for v in values})
        return self._tries[key]

    def scaffold(self, grammar: SchemaGrammar, index: int) -> list[int]:
        """Forced tokens before slot `index` (or the closing tokens when index == len(slots))."""
        sep = self.template.separator if index > 0 else ""
        if index == len(grammar.slots):
            return [*self.tok.encode(sep), self.tok.eos_id]
        name = grammar.slots[index].name
        return self.tok.encode(sep + self.template.slot.replace("{name}", name))

    def slot_allowed(self, spec: SequenceSpec, index: int, decided: dict) -> tuple[Any, ...]:
        slot = spec.grammar.slots[index]
        if slot.field in spec.not_assessable:
            return (None,)
        return spec.grammar.allowed(index, decided)

    @cached_property
    def all_single_token(self) -> bool:
        """True when every value of every slot is one token: sequences then decode in lockstep."""
        for grammar in (level_grammar(), study_grammar()):
            for slot in grammar.slots:
                if not self.trie((None, *slot.values)).single_token:
                    return False
        return True

    def teacher_forced(
        self, spec: SequenceSpec, targets: dict[str, dict[str, Any]]
    ) -> tuple[list[int], list[tuple[int, list[int], str]]]:
        """Answer tokens for known targets, and per value token its allowed ids and field.

        `targets`: field -> finding dict ({"value": v, "zone": z} or {"not_assessable": why}).
        Returns (ids, [(position in ids, allowed token ids at that position, slot name)]); forced
        positions (a single allowed token) are left out: there is nothing to learn there.
        """
        ids: list[int] = []
        supervised: list[tuple[int, list[int], str]] = []
        decided: dict[str, dict[str, Any]] = {}
        for i, slot in enumerate(spec.grammar.slots):
            ids += self.scaffold(spec.grammar, i)
            allowed = self.slot_allowed(spec, i, decided)
            tgt = targets.get(slot.field, {"not_assessable": "unknown"})
            if slot.field in spec.not_assessable or "not_assessable" in tgt:
                value = None
            else:
                value = tgt.get("value") if slot.qualifier is None else tgt.get(slot.qualifier)
            if value not in allowed:  # target inconsistent with the grammar: do not teach it
                value = allowed[0]
                learn = False
            else:
                learn = len(allowed) > 1 and slot.field not in spec.not_assessable
                learn = learn and "not_assessable" not in tgt
            node = self.trie(allowed).root
            for t in self.value_ids(value):
                if learn and len(node) > 1:
                    supervised.append((len(ids), sorted(node), slot.name))
                ids.append(t)
                node = node[t]
            decided = _record(decided, slot, value, spec)
        ids += self.scaffold(spec.grammar, len(spec.grammar.slots))
        return ids, supervised


def _record(decided: dict, slot: Slot, value: Any, spec: SequenceSpec) -> dict:
    out = dict(decided)
    if slot.qualifier is None:
        if slot.field in spec.not_assessable or value is None:
            reason = spec.not_assessable.get(slot.field, "not assessable")
            out[slot.field] = {"not_assessable": reason}
        else:
            out[slot.field] = {"value": value}
    elif "not_assessable" not in out[slot.field]:
        out[slot.field] = {**out[slot.field], slot.qualifier: value}
    return out


# A step function: (token ids (B, T)) -> logits of the last position (B, V). It owns the cache.
StepFn = Callable[[torch.Tensor], torch.Tensor]


def constrained_decode(
    step: StepFn,
    first_logits: torch.Tensor,
    specs: Sequence[SequenceSpec],
    constraint: Constraint,
    temperatures: dict[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """Decode a batch of sequences in lockstep (they must share one slot structure).

    `first_logits` are the logits after the prompt (before the first slot's scaffold). With
    `generator` the values are sampled (for tests of validity); otherwise greedy.
    Returns per sequence: field -> finding dict with value, probability and qualifiers.
    """
    temperatures = temperatures or {}
    n = len(specs)
    grammar = specs[0].grammar
    decided: list[dict[str, dict[str, Any]]] = [{} for _ in range(n)]
    logits = first_logits
    pending: list[list[int]] = [[] for _ in range(n)]
    scores_of: list[dict[str, tuple[float, dict[Any, float] | None]]] = [{} for _ in range(n)]
    for i, slot in enumerate(grammar.slots):
        for b in range(n):
            pending[b] += constraint.scaffold(grammar, i)
        logits = _feed(step, pending, logits)
        pending = [[] for _ in range(n)]
        allowed = [constraint.slot_allowed(specs[b], i, decided[b]) for b in range(n)]
        if not all(allowed):
            raise RuntimeError(f"the grammar allows no value for slot {slot.name!r}")
        tries = [constraint.trie(a) for a in allowed]
        nodes = [t.root for t in tries]
        logp = [0.0] * n
        dists: list[dict[Any, float] | None] = [None] * n
        done = [False] * n
        temp = temperatures.get(slot.name, 1.0)
        while not all(done):
            for b in range(n):
                if done[b]:
                    continue
                choices = sorted(nodes[b])
                scores = logits[b, choices].float() / temp
                lp = torch.log_softmax(scores, dim=0)
                if generator is not None:
                    k = int(torch.multinomial(lp.exp(), 1, generator=generator))
                else:
                    k = int(torch.argmax(lp))
                if nodes[b] is tries[b].root and tries[b].single_token:
                    inv = {ids: v for v, ids in _first_ids(tries[b]).items()}
                    dists[b] = {inv[c]: float(p) for c, p in zip(choices, lp.exp(), strict=True)}
                token = choices[k]
                logp[b] += float(lp[k])
                pending[b].append(token)
                nodes[b] = nodes[b][token]
                if id(nodes[b]) in tries[b].terminal:
                    done[b] = True
            if not all(done):
                # Multi-token values: only reachable when sequences are not in lockstep (B == 1).
                logits = _feed(step, pending, logits)
                pending = [[] for _ in range(n)]
        for b in range(n):
            value = tries[b].terminal[id(nodes[b])]
            decided[b] = _record(decided[b], slot, value, specs[b])
            if slot.qualifier is None and value is not None:
                scores_of[b][slot.field] = (math.exp(logp[b]), dists[b])
    # Probabilities go in last: the validity oracle above judges values, not probabilities.
    for b in range(n):
        for name, (p, dist) in scores_of[b].items():
            decided[b][name]["probability"] = p
            if dist is not None:
                decided[b][name]["_distribution"] = dist
    return decided


def _first_ids(trie: TokenTrie) -> dict[Any, int]:
    return {trie.terminal[id(child)]: t for t, child in trie.root.items()}


def _feed(step: StepFn, pending: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
    if not pending[0]:
        return logits
    lengths = {len(p) for p in pending}
    if len(lengths) != 1:
        raise RuntimeError("sequences left lockstep; decode them one at a time")
    return step(torch.tensor(pending, dtype=torch.long))

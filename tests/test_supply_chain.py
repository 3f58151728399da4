"""Supply chain: nothing a user can hand us is unpickled or executed. Read from the source with
`ast`: no pickle / marshal / shelve / dill import, no torch.load without weights_only=True, no
numpy load with allow_pickle=True or without allow_pickle=False, no eval / exec / compile of
text; every shipped weight file is safetensors or JSON (sha256-checked at load: see
test_segmenter_weights, test_vlm_training)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("reporter", "eval", "scripts") for p in (ROOT / d).rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "joblib", "cloudpickle"}


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id
                if isinstance(f, ast.Name)
                else f"{getattr(f.value, 'id', getattr(f.value, 'attr', '?'))}.{f.attr}"
                if isinstance(f, ast.Attribute)
                else "?"
            )
            out.append((name, node))
    return out


def _kw(call: ast.Call, name: str) -> object:
    for k in call.keywords:
        if k.arg == name and isinstance(k.value, ast.Constant):
            return k.value.value
    return None


def test_no_unsafe_deserialiser_is_imported() -> None:
    bad = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in UNSAFE_MODULES]
    assert bad == []


def test_no_torch_load_numpy_pickle_eval_or_exec() -> None:
    bad = []
    for path in SOURCES:
        for name, call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{call.lineno} {name}"
            if name == "torch.load" and _kw(call, "weights_only") is not True:
                bad.append(where)
            if name in ("np.load", "numpy.load") and _kw(call, "allow_pickle") is True:
                bad.append(where)
            if name in ("eval", "exec", "compile", "__import__"):
                bad.append(where)
    assert bad == []


def test_shipped_weights_are_safetensors_or_json() -> None:
    weights = ROOT / "reporter" / "weights"
    kinds = {p.suffix for p in weights.rglob("*") if p.is_file()}
    assert kinds <= {".safetensors", ".json", ".md"}, kinds

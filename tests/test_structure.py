"""The structure holds: imports run downward, every stage depends on the code it imports,
and code defaults equal params.yaml."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"dnb": 0, "models": 1, "pipeline": 2, "producer": 2}  # a package may import only lower layers


def project_imports(path: Path) -> set[str]:
    """Dotted names of the project modules ``path`` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in LAYERS}


def module_file(name: str) -> Path | None:
    """The file of a project module (a package's __init__.py), or None for a name inside a module."""
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return None


@pytest.mark.parametrize("package", list(LAYERS))
def test_imports_run_downward(package):
    """dnb <- models <- pipeline / producer: no module imports its own layer's peers above it."""
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in project_imports(path):
            top = name.split(".")[0]
            if LAYERS[top] > LAYERS[package] or (LAYERS[top] == LAYERS[package] and top != package):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "imports against the layers: " + "; ".join(wrong)


def closure(module: str) -> set[Path]:
    """Every project file a module imports, directly or not (itself included)."""
    todo, seen = [module], set()
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += sorted(project_imports(path))
    return seen


def stage_deps() -> dict[str, tuple[str, list[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = re.search(r"python -m ([\w.]+)", body["cmd"]).group(1)
        out[name] = (module, [str(d) if isinstance(d, str) else next(iter(d)) for d in body["deps"]])
    return out


@pytest.mark.parametrize("stage", list(stage_deps()))
def test_every_stage_depends_on_the_code_it_imports(stage):
    """A change to any file a stage imports re-runs it: dvc.yaml's deps cover the import closure."""
    module, deps = stage_deps()[stage]
    uncovered = []
    for path in sorted(closure(module)):
        rel = path.relative_to(ROOT).as_posix()
        if rel.endswith("__init__.py") and path.read_text().count("\n") < 3:
            continue  # a docstring-only package marker
        if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
            uncovered.append(rel)
    assert not uncovered, f"stage {stage} imports {uncovered} but does not depend on them"


def test_baseline_defaults_equal_params_yaml():
    """``dnb generate --model knn`` outside the repository uses DEFAULTS: they must be the evaluation's values."""
    from models.baselines import DEFAULTS

    evaluate = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]
    assert {k: evaluate[k] for k in DEFAULTS} == DEFAULTS


def test_name_lists_are_written_once():
    """params.yaml holds the only list of models, baselines and ablation tags; the registry knows them all."""
    import models

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params["models"]) <= set(models.architectures())
    assert set(params["baselines"]) <= set(models.baseline_classes())
    for section in ("evaluate", "tables", "demo"):
        assert not {"models", "baselines", "ablations", "ablation_tags"} & set(params[section]), section
    dvc = (ROOT / "dvc.yaml").read_text()
    for name in params["models"] + params["baselines"]:
        assert not re.search(rf"\b{name}\b", dvc), f"dvc.yaml names {name}: use the params lists"

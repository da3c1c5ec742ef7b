"""Reading params.yaml: the one loader every stage and command uses."""

from __future__ import annotations

from pathlib import Path

import yaml

PARAMS = Path("params.yaml")


def load_params(path: str | Path = PARAMS) -> dict:
    """The whole params file as a dict; a missing or malformed file is one clear ``SystemExit``."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SystemExit(f"cannot read {path}: {err.strerror}; run from the repository root") from None
    except yaml.YAMLError as err:
        raise SystemExit(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise SystemExit(f"{path} must be a mapping of sections, got {type(params).__name__}")
    return params


def seed_runs(seeds: dict | None, main_seed: int) -> list[tuple[str, str, int]]:
    """(stem of the main run, its folder below ``seeds/``, seed) of every extra seed of
    ``train.seeds``, the main run's own seed not repeated: checkpoints and dvclive logs of the
    seed runs live at ``<root>/seeds/<folder>/seed<k>``, and their reports are ``<stem>_seed<k>``."""
    seeds = seeds or {}
    runs = [(m, m) for m in seeds.get("models") or []]
    runs += [(f"ablation_{t}", f"ablation/{t}") for t in seeds.get("ablations") or []]
    extra = [int(k) for k in seeds.get("extra") or [] if int(k) != main_seed]
    return [(stem, folder, k) for stem, folder in runs for k in extra]


def ablation_run(entry: list | dict | None) -> tuple[list[str], dict]:
    """(labels, budget) of one ``train.ablation`` entry: a list of conditioning labels, or
    ``{labels: [...], budget: {...}}`` for a run that trains under its own budget (``budget``
    overrides ``train.ablation_params``; e.g. the paper's chord run, trained far longer while the
    ladder keeps the shared budget, so that the ladder compares labels at one budget)."""
    if isinstance(entry, dict):
        unknown = set(entry) - {"labels", "budget"}
        if unknown:
            raise SystemExit(f"an ablation entry has labels and budget, not {', '.join(sorted(unknown))}")
        return list(entry.get("labels") or []), dict(entry.get("budget") or {})
    return list(entry or []), {}

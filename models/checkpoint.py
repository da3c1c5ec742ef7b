"""Saving and loading trained models.

A checkpoint holds only tensors and plain python types (name, params, DataInfo as a
dict, state dict, extra) so that ``torch.load(weights_only=True)`` can read it: no
pickled classes, no code execution when a checkpoint is opened.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from dnb.schema import DataInfo
from models import build


def plain(obj):
    """A JSON round trip: tuples -> lists, numpy scalars refused early, keys -> str."""
    return json.loads(json.dumps(obj))


def atomic_save(payload: dict, path: str | Path) -> None:
    """torch.save to a temporary file then os.replace, so a killed process never
    leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def save_checkpoint(
    path: str | Path, model: torch.nn.Module, name: str, params: dict, info: DataInfo, extra: dict | None = None
) -> None:
    """Write ``model`` so that ``load_trained(path)`` rebuilds it by ``name``."""
    atomic_save(
        {
            "name": name,
            "params": plain(params),
            "info": plain(dataclasses.asdict(info)),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "extra": plain(extra or {}),
        },
        path,
    )


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict (name, params, info, state_dict, extra)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: run `dvc repro train` first")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_trained(path: str | Path):
    """Rebuild the model saved at ``path`` (in eval mode)."""
    payload = read_checkpoint(path)
    model = build(payload["name"], payload["params"], DataInfo(**payload["info"]))
    model.load_state_dict(payload["state_dict"])
    model.extra = payload["extra"]
    return model.eval()

"""Model registry: one file per architecture, picked by name (as in pytorch-CycleGAN-and-pix2pix).

An architecture ``<name>`` is the file ``models/<name>.py`` defining the class
``CamelCase(name)`` (``lstm_fcnn`` -> ``LstmFcnn``), a ``NeuralBassModel``; a baseline
is a ``Baseline`` subclass of ``models/baselines.py`` with its ``name``. Nothing else
lists them: adding a model is adding its file (and its name to ``models:`` in
params.yaml). The interface is ``models.base.BassGenerator``; the batch schema and
``DataInfo`` are ``dnb.schema``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dnb.schema import SOURCES, DataInfo
from models.base import BassGenerator, NeuralBassModel, use_dropout_kernel

# files of models/ that hold shared machinery, not an architecture
MACHINERY = ("base", "autoregressive", "conditioning", "checkpoint", "baselines")


def class_name(name: str) -> str:
    """'lstm_fcnn' -> 'LstmFcnn'."""
    return "".join(part.capitalize() for part in name.split("_"))


def architectures() -> list[str]:
    """Names of the architecture files in models/ (sorted)."""
    here = Path(__file__).parent
    return sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_") and p.stem not in MACHINERY)


def baseline_classes() -> dict[str, type]:
    """{name: class} of every baseline in models/baselines.py, in file order."""
    module = importlib.import_module("models.baselines")

    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, module.Baseline)]
    return {cls.name: cls for cls in found if cls is not module.Baseline}


def is_baseline(name: str) -> bool:
    return name in baseline_classes()


def model_class(name: str) -> type:
    """The class registered under ``name`` (architecture or baseline)."""
    found = baseline_classes()
    if name in found:
        return found[name]
    if name not in architectures():
        raise KeyError(f"unknown model {name!r}; known: {', '.join(architectures() + list(found))}")
    return getattr(importlib.import_module(f"models.{name}"), class_name(name))


def build(name: str, params: dict, info: DataInfo) -> BassGenerator:
    """Instantiate the model or baseline registered under ``name``; a clear error when its
    conditioning asks for the previous window and the architecture cannot take it."""
    cls = model_class(name)
    past = [label for label in SOURCES if label in (params.get("conditioning") or [])]
    if past and not cls.can_take_previous:
        takers = [n for n in architectures() if model_class(n).can_take_previous]
        raise ValueError(f"{name} cannot take the song's past: remove {', '.join(map(repr, past))} from its "
                         f"conditioning (architectures that take it: {', '.join(takers)})")
    model = cls(params, info)
    if isinstance(model, NeuralBassModel):
        use_dropout_kernel(model, str(params.get("dropout_kernel", "fast")))
    return model


__all__ = ["BassGenerator", "DataInfo", "NeuralBassModel", "architectures", "baseline_classes", "build", "model_class"]

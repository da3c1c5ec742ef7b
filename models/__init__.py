"""Model registry and the one interface every model and baseline implements.

Pick a model by name (``build("transformer", params, info)``), as in
pytorch-CycleGAN-and-pix2pix. Everything downstream (training, evaluation,
``dnb generate``) talks to models only through ``BassGenerator``.

A *batch* is a dict of tensors (see ``dnb.data``)::

    drums   float32 [B, 32, 14]   drum onset grid
    roll    float32 [B, 64, 36]   bass onset roll (targets)
    tokens  int64   [B, 64]       bass tokens (targets; REST/SUSTAIN/ONSET+p)
    tempo   float32 [B]           log2(bpm / 120)
    program int64   [B]           bass program index 0..8
    key     int64   [B]           0..23 (tonic + 12 * minor)
    genre   int64   [B]           predicted drum style index
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch

# name -> module in models/ (imported lazily so that one broken model never breaks the rest)
REGISTRY = {
    "ffnn": "models.ffnn",
    "cnn": "models.cnn",
    "lstm": "models.lstm",
    "lstm_fcnn": "models.lstm_fcnn",
    "cvae": "models.cvae",
    "pix2pix": "models.pix2pix",
    "transformer": "models.transformer",
}
BASELINES = {
    "silence": "models.baselines",
    "constant_density": "models.baselines",
    "repaired": "models.baselines",
    "knn": "models.baselines",
    "root_on_kick": "models.baselines",
    "bigram": "models.baselines",
}


@dataclass
class DataInfo:
    """What a model needs to know about the data to build itself."""

    n_programs: int = 9
    n_keys: int = 24
    n_genres: int = 1
    genre_names: list[str] = field(default_factory=list)


class BassGenerator:
    """Interface shared by neural models and baselines.

    * ``sample``: K bass lines per drum loop -> int64 tokens ``[B, K, 64]``.
    * ``token_nll``: per-step negative log-likelihood of the true tokens
      ``[B, 64]`` in nats, or ``None`` when the model defines no distribution over
      tokens (pix2pix). ``nll_is_bound`` says whether it is an upper bound (VAE).
    * ``onset_probs``: onset probabilities ``[B, 64, 36]`` for the roll BCE, or
      ``None``.
    """

    name: str = "base"
    deterministic: bool = False  # True: all K samples are identical by design
    nll_is_bound: bool = False

    def sample(self, batch: dict, k: int = 1, temperature: float = 1.0, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def token_nll(self, batch: dict) -> torch.Tensor | None:
        return None

    def onset_probs(self, batch: dict) -> torch.Tensor | None:
        return None


class NeuralBassModel(torch.nn.Module, BassGenerator):
    """A trainable model. ``pipeline/train.py`` drives it through:

    * ``__init__(params: dict, info: DataInfo)`` where ``params`` is the merge of
      ``train.common`` and ``train.<name>`` from params.yaml;
    * ``configure_optimizers(lr) -> list[torch.optim.Optimizer]``;
    * ``training_step(batch, optimizers, epoch) -> dict[str, float]`` (does
      backward and steps; the first key, ``loss``, is logged);
    * ``validation_loss(batch) -> torch.Tensor`` scalar mean token NLL per step
      (early stopping criterion; models without a token distribution return
      their own reconstruction loss and say so in their docstring).
    """

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(self, batch: dict, optimizers: list, epoch: int) -> dict[str, float]:
        raise NotImplementedError

    def validation_loss(self, batch: dict) -> torch.Tensor:
        nll = self.token_nll(batch)
        if nll is None:
            raise NotImplementedError
        return nll.mean()


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def model_class(name: str):
    """The class registered under ``name`` (model or baseline)."""
    module = REGISTRY.get(name) or BASELINES.get(name)
    if module is None:
        known = ", ".join(sorted(REGISTRY) + sorted(BASELINES))
        raise KeyError(f"unknown model {name!r}; known: {known}")
    mod = importlib.import_module(module)
    return getattr(mod, getattr(mod, "CLASSES", {}).get(name, _class_name(name)))


def build(name: str, params: dict, info: DataInfo):
    """Instantiate the model or baseline registered under ``name``."""
    return model_class(name)(params, info)

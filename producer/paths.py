"""Where `dnb generate` and `dnb serve` find checkpoints, the style classifier and the tensors.

So that the commands work from any folder, not only from the repository root, each
resource is looked up in this order, the first that applies wins:

1. the command-line flag (``--checkpoint-dir``, ``--classifier``, ``--tensors``);
2. the environment variable (``DNB_CHECKPOINTS``, ``DNB_CLASSIFIER``, ``DNB_TENSORS``);
3. the repository the package was installed from (the parent of the ``producer``
   package, an editable install or a clone on ``PYTHONPATH``), when it has the resource;
4. the repository-relative default in the current folder (``./checkpoints``, ...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = {"checkpoints": "DNB_CHECKPOINTS", "classifier": "DNB_CLASSIFIER", "tensors": "DNB_TENSORS"}
IN_REPO = {"checkpoints": Path("checkpoints"), "classifier": Path("data/style_classifier.npz"),
           "tensors": Path("data/tensors")}
FLAGS = {"checkpoints": "--checkpoint-dir", "classifier": "--classifier", "tensors": "--tensors"}


def install_root() -> Path:
    """The folder holding the ``producer`` package (the repository, for a clone or an editable install)."""
    return Path(__file__).resolve().parents[1]


def resolve(kind: str, given: str | Path | None = None) -> tuple[Path, str]:
    """(path of ``kind`` = checkpoints / classifier / tensors, where it came from, for messages)."""
    if given is not None:
        return Path(given), FLAGS[kind]
    if os.environ.get(ENV[kind]):
        return Path(os.environ[ENV[kind]]), f"${ENV[kind]}"
    installed = install_root() / IN_REPO[kind]
    if installed.exists():
        return installed, f"the repository of the installed package ({install_root()})"
    return IN_REPO[kind], "the current folder"


def has_dvc_remote(root: Path | None = None) -> bool:
    """Whether the repository's DVC config names a remote (then ``dvc pull`` can fetch the outputs)."""
    root = install_root() if root is None else root
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.exists() and re.search(r'^\s*\[\s*[\'"]?remote\s+"', path.read_text(), re.MULTILINE):
            return True
    return False


def how_to_get(target: str) -> str:
    """The sentence that says how to get a missing pipeline output ``target`` (e.g. ``checkpoints/cnn.pt``)."""
    if has_dvc_remote():
        fetch = f"`dvc pull {target}` (a DVC remote is configured) or `make reproduce`"
    else:
        fetch = "`make reproduce` (no DVC remote is configured to `dvc pull` from)"
    return f"get it with {fetch} in {install_root()}"

"""`dnb.device`: the device pick, its errors, CPU batches passed through untouched, and every
model's compute paths free of tensors pinned to the CPU (checked on the ``meta`` device,
which refuses to mix with CPU tensors as cuda does, without needing a GPU)."""

from pathlib import Path

import pretty_midi
import pytest
import torch

from dnb.data import synthetic_split
from dnb.device import CPU, device_of, pick_device, to_device
from dnb.schema import DataInfo
from models import build
from models.checkpoint import save_checkpoint
from producer import cli

SIZES = {
    "ffnn": {"hidden": 16},
    "cnn": {"channels": 8},
    "lstm": {"hidden": 16},
    "lstm_fcnn": {"hidden": 16, "fc": 32},
    "cvae": {"hidden": 16, "latent": 4, "iw_samples": 1},
    "pix2pix": {"ngf": 4, "ndf": 4},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "ff": 32},
}
ALL_LABELS = ["tempo", "program", "key", "style", "chords"]
# besides training_step, the paths that create tensors of their own, each once (an LSTM on the meta
# device runs step by step and is slow): sampling (sample_loop through the Seq2Seq decoder step, on the
# cvae, with its seeded noise in token_nll; onset_probs draws the same way), the beam search and the
# transformer's key/value cache (beam_search); pix2pix samples through numpy, which meta cannot feed
PATHS = {"cvae": ["token_nll", "sample"], "transformer": ["token_nll", "beam_search"], "lstm": [],
         "pix2pix": ["token_nll", "onset_probs"]}
NO_GPU = not torch.cuda.is_available()


def test_auto_and_explicit_devices():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto").type == pick_device(None).type == expected
    assert pick_device("cpu") == pick_device(" CPU ") == CPU
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")
    with pytest.raises(ValueError, match="cuda:99"):
        pick_device("cuda:99")


@pytest.mark.skipif(not NO_GPU, reason="CUDA is available here")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


def test_cpu_batches_and_models_are_left_as_they_are():
    batch = synthetic_split(4)
    moved = to_device(batch, CPU)
    assert moved.keys() == batch.keys() and all(moved[k] is batch[k] for k in batch)
    model = build("ffnn", {"hidden": 8}, DataInfo())
    assert device_of(model) == CPU and device_of(object()) == CPU
    assert model.to(CPU) is model


@pytest.mark.parametrize("name", list(SIZES))
def test_models_compute_on_the_device_of_their_inputs(name):
    torch.manual_seed(0)
    params = {**SIZES[name], "conditioning": ALL_LABELS, "chord_dropout": 0.5}  # chord dropout draws in training
    model = build(name, params, DataInfo(n_styles=3)).to("meta")
    batch = to_device(synthetic_split(4), "meta")
    for method in PATHS.get(name, ["token_nll", "onset_probs", "sample"]):
        out = model.sample(batch, k=2) if method == "sample" else getattr(model, method)(batch)
        assert out is None or out.device.type == "meta", method  # pix2pix has no token_nll
    # forward, backward, the optimiser step: only reading the loss as a float needs data
    with pytest.raises(RuntimeError, match="meta tensors"):
        model.training_step(batch, model.configure_optimizers(1e-3), 0)


@pytest.mark.skipif(not NO_GPU, reason="CUDA is available here")
def test_generate_on_an_unavailable_device_is_one_line(tmp_path, capsys):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes = [pretty_midi.Note(100, 36, i * 0.5, i * 0.5 + 0.1) for i in range(16)]
    pm.instruments.append(kit)
    pm.write(str(tmp_path / "drums.mid"))
    info = DataInfo()
    save_checkpoint(tmp_path / "ffnn.pt", build("ffnn", {"hidden": 8}, info), "ffnn", {"hidden": 8}, info)
    args = [str(tmp_path / "drums.mid"), "--model", "ffnn", "--checkpoint-dir", str(tmp_path)]
    assert cli.main(["generate", *args, "--device", "cuda", "--out", str(tmp_path / "a.mid")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnb: error: device 'cuda' requested but CUDA is not available") and err.count("\n") == 1
    assert cli.main(["generate", *args, "--device", "cpu", "--out", str(tmp_path / "b.mid")]) == 0
    assert Path(tmp_path / "b.mid").exists()


def test_autocast_precision_runs_matmuls_in_bf16_only_when_asked():
    """``train.common.precision``: bf16 autocast lowers a linear layer's output to bfloat16 and
    leaves its weights fp32; fp32 (or None) is the plain path; anything else is a clear error."""
    from dnb.device import autocast

    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32
    for plain in ("fp32", None, " FP32 "):
        with autocast("cpu", plain):
            assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        autocast(CPU, "fp16")

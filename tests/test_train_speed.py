"""benchmarks/train_speed.py in its quick mode on one small model: the table has its columns and
positive numbers (no timing is asserted)."""

import math
import sys
from pathlib import Path

import pytest
import torch

from dnb.schema import DataInfo

# imported by name from its folder, so that the spawned data-parallel ranks can import it too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_speed  # noqa: E402

SECTION = {
    "common": {"seed": 0, "batch_size": 8, "lr": 0.001, "max_epochs": 3, "max_minutes": 1.0, "epoch_pairs": 0,
               "max_train_pairs": 0, "conditioning": ["tempo", "key"]},
    "ffnn": {"hidden": 16, "dropout": 0.0},
}


def test_quick_mode_table_has_the_columns_and_positive_numbers():
    knobs = {k: train_speed.QUICK[k] for k in ("steps", "warmup", "mm_reps")}
    threads = torch.get_num_threads()
    peaks, rows = train_speed.measure(SECTION, ["ffnn"], DataInfo(n_styles=3), train_pairs=100,
                                      extra_batch_sizes=(4,), mm_size=64, bf16=True, processes=2, **knobs)
    assert torch.get_num_threads() == threads  # restored
    assert set(peaks) == {1, 2} and all(p > 0 for p in peaks.values())
    assert [(r["batch"], r["configured"]) for r in rows] == [(4, False), (8, True)]
    for r in rows:
        assert r["flops_per_pair"] > 0 and r["params"] > 0 and r["epoch_pairs"] == 100
        for key in ("pairs_s_1", "pairs_s_2", "pairs_s_dp2", "peak_1", "peak_2", "bf16_1", "bf16_2"):
            assert math.isfinite(r[key]) and r[key] > 0, key
        assert r["setup"] == (1, 1)  # processes and threads default to 1
    shares = rows[1]["shares"]  # the configured batch only
    assert "shares" not in rows[0] and list(shares) == list(train_speed.SHARES)
    assert sum(shares.values()) == pytest.approx(1.0) and shares["matmul"] > 0 and min(shares.values()) >= 0
    lines = train_speed.table(rows, bf16=True).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == ["model", "batch", "params", "MFLOP/pair", "pairs/s 1T", "pairs/s 2T", "pairs/s 2x1T", "2T/1T",
                    "2x1T/1T", "of mm peak 1T", "of mm peak 2T", "of mm peak 2x1T", "configured", "s/epoch",
                    "budget used", "bf16/fp32 1T", "bf16/fp32 2T"]
    assert len(lines) == 2 + len(rows)
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(head)
        numbers = [float(c.rstrip("%MkT")) for c in cells[1:] if c != "-"]
        assert len(numbers) >= len(head) - 3 and all(v > 0 for v in numbers)
    assert [c.strip() for c in lines[3].strip("|").split("|")][head.index("configured")] == "1T"
    assert "| ffnn |" in train_speed.shares_table(rows)


def test_reference_is_the_baseline_configuration():
    """The headline ratio's reference: attention dropout as dropout, the for-loop Adam."""
    reference = train_speed.reference_params({"dropout": 0.3, "attn_dropout": 0.0})
    assert reference["attn_dropout"] == 0.3 and reference["dropout_kernel"] == "torch"
    model = torch.nn.Linear(2, 2)
    (adam,) = train_speed._optimizers(model, {"lr": 0.01}, reference=True)
    assert not adam.defaults["fused"] and not adam.defaults["foreach"]
    rates = train_speed.measure_reference(SECTION, "ffnn", DataInfo(n_styles=3), steps=2, warmup=1)
    assert set(rates) == {1, 2} and all(math.isfinite(v) and v > 0 for v in rates.values())


def test_lstm_flops_are_counted():
    """The LSTM's CPU kernel (mkldnn_rnn_layer) has no FlopCounterMode formula: without the
    benchmark's own, an LSTM model would count only its linear layers."""
    lstm = torch.nn.LSTM(10, 6, batch_first=True)
    x = torch.randn(3, 5, 10)
    with torch.utils.flop_counter.FlopCounterMode(display=False, custom_mapping=train_speed.RNN_FORMULAS) as fc:
        lstm(x)[0].sum().backward()
    forward = 2 * 3 * 5 * 4 * 6 * (10 + 6)
    assert fc.get_total_flops() == 3 * forward  # backward: twice the forward matmuls


def test_head_to_head_rounds_and_median():
    rounds = train_speed.head_to_head(SECTION, "ffnn", DataInfo(n_styles=3), steps=2, warmup=1, repeats=2)
    assert len(rounds) == 2
    for rate, reference in rounds:
        assert rate > 0 and set(reference) == {1, 2} and all(v > 0 for v in reference.values())
    assert train_speed.median_ratios([(6.0, {1: 2.0, 2: 3.0}), (8.0, {1: 2.0, 2: 2.0}), (5.0, {1: 5.0, 2: 1.0})]) \
        == {1: 3.0, 2: 4.0}

"""The standalone train/infer CLI, run as users run it: a subprocess of the script."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, real_candles_path

SCRIPT = REPO_ROOT / "user_data" / "research" / "train_infer_trm_ts.py"
TINY = ["--window", "32", "--scales", "8,32", "--latent_dim", "8", "--batch", "128"]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        cwd=REPO_ROOT,
    )


def metric_rows(stdout: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"^(MAE|RMSE|NLL|CRPS|68% coverage|95% coverage)\s+(\S+)\s+(\S+)$", line)
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model.pt"
    result = run_cli("--epochs", "2", "--rows", "2500", "--lr", "1e-3", "--output", str(out),
                     *TINY)
    return result, out


@pytest.mark.slow
def test_cli_trains_and_prints_epochs(trained):
    result, _ = trained
    assert result.returncode == 0, result.stderr
    assert re.search(r"Epoch 001 - Train: -?\d+\.\d{4}, Valid: -?\d+\.\d{4} \u2605 \(best\)",
                     result.stdout)


@pytest.mark.slow
def test_cli_reports_model_and_baseline_metrics(trained):
    rows = metric_rows(trained[0].stdout)
    assert set(rows) == {"MAE", "RMSE", "NLL", "CRPS", "68% coverage", "95% coverage"}


@pytest.mark.slow
def test_cli_reports_nll_for_steps_one_to_eight(trained):
    steps = re.findall(r"^  steps (\d): -?\d+\.\d+$", trained[0].stdout, flags=re.M)
    assert steps == [str(i) for i in range(1, 9)]


@pytest.mark.slow
def test_cli_load_reproduces_metrics(trained):
    result, path = trained
    loaded = run_cli("--load", str(path))
    assert loaded.returncode == 0, loaded.stderr
    assert metric_rows(loaded.stdout) == metric_rows(result.stdout)


def test_cli_load_missing_file(tmp_path):
    result = run_cli("--load", str(tmp_path / "absent.pt"))
    assert result.returncode == 2
    assert "checkpoint file not found" in result.stderr


def test_cli_cuda_without_gpu(tmp_path):
    result = run_cli("--device", "cuda:7", "--no-save")
    assert result.returncode == 2
    assert "CUDA is not available" in result.stderr or "cuda:7" in result.stderr


@pytest.mark.parametrize(
    "text,expected",
    [
        ("date,open\n2025-01-01,1\n", "required column 'close' is missing"),
        ("date,close\n2025-01-01,1\n2025-01-02,x\n", "column 'close' row 2"),
        ("close\n" + "\n".join(str(100 + i % 7) for i in range(300)) + "\n", "usable windows"),
    ],
)
def test_cli_bad_csv_one_line_exit_2(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = run_cli("--csv", str(path), "--no-save", *TINY)
    assert result.returncode == 2
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_on_real_btc_csv(tmp_path):
    # Users export candles as CSV; the last 6,000 real BTC 15m candles keep this quick.
    candles = pd.read_feather(real_candles_path("BTC_USDT", "15m")).tail(6_000)
    csv = tmp_path / "btc 15m.csv"
    candles.to_csv(csv, index=False)
    model = tmp_path / "btc.pt"
    result = run_cli("--csv", str(csv), "--epochs", "2", "--lr", "1e-3", "--output", str(model),
                     *TINY)
    assert result.returncode == 0, result.stderr
    rows = metric_rows(result.stdout)
    assert set(rows) == {"MAE", "RMSE", "NLL", "CRPS", "68% coverage", "95% coverage"}
    reloaded = run_cli("--csv", str(csv), "--load", str(model))
    assert metric_rows(reloaded.stdout) == rows

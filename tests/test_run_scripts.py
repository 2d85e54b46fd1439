"""Run scripts: the PowerShell and bash wrappers offer the Python entry's actions and options.

PowerShell cannot run here, so the .ps1 is parsed with the tree-sitter PowerShell grammar.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import tree_sitter
import tree_sitter_powershell
from replay_helpers import RAMP_START, REPO_ROOT, write_ramp_datadir
from trm_ts.replay.market import WEEK_MS

SCRIPTS = REPO_ROOT / "scripts"
PS1 = SCRIPTS / "run_trm_ts.ps1"
BASH = SCRIPTS / "run_trm_ts.sh"


def load_runner():
    spec = importlib.util.spec_from_file_location("run_trm_ts", SCRIPTS / "run_trm_ts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()


def parse_powershell(source: bytes) -> tree_sitter.Tree:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    return parser.parse(source)


def syntax_problems(node: tree_sitter.Node) -> list[str]:
    """List the ERROR and MISSING nodes under ``node`` with their positions."""
    problems = []
    if node.type == "ERROR" or node.is_missing:
        problems.append(f"{node.type} at {node.start_point}: {node.text[:60]!r}")
    for child in node.children:
        problems.extend(syntax_problems(child))
    return problems


def nodes_of_type(node: tree_sitter.Node, node_type: str) -> list[tree_sitter.Node]:
    found = [node] if node.type == node_type else []
    for child in node.children:
        found.extend(nodes_of_type(child, node_type))
    return found


def ps1_parameters(tree: tree_sitter.Tree) -> dict[str, list[str]]:
    """Map each script parameter name to the string arguments of its attributes."""
    parameters = {}
    for parameter in nodes_of_type(tree.root_node, "script_parameter"):
        name = next(n for n in parameter.children if n.type == "variable").text.decode()[1:]
        strings = [
            node.text.decode().strip("'\"") for node in nodes_of_type(parameter, "string_literal")
        ]
        parameters[name] = strings
    return parameters


def help_text() -> str:
    result = subprocess.run(
        ["bash", str(BASH), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


# PowerShell wrapper.


def test_ps1_parses_cleanly() -> None:
    tree = parse_powershell(PS1.read_bytes())
    assert syntax_problems(tree.root_node) == []


def test_ps1_checker_finds_errors() -> None:
    broken = PS1.read_bytes().replace(b"if ($Replay) {", b"if ($Replay {", 1)
    assert syntax_problems(parse_powershell(broken).root_node) != []


def test_ps1_actions_match_runner() -> None:
    actions = ps1_parameters(parse_powershell(PS1.read_bytes()))["Action"]
    assert actions == list(runner.ACTIONS)


def test_ps1_parameters_map_to_options() -> None:
    """Each PowerShell parameter becomes an option of the Python entry (-PlotPair: --plot-pair)."""
    options = set(re.findall(r"--[a-z][a-z-]+", help_text()))
    names = set(ps1_parameters(parse_powershell(PS1.read_bytes()))) - {"Action", "FreqtradeArgs"}
    expected = {"--" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower() for name in names}
    assert expected <= options
    assert "--timerange" in expected


def test_ps1_passes_options_through() -> None:
    """The script forwards every parameter under the option name the Python entry expects."""
    source = PS1.read_text()
    for option in (
        "--timerange",
        "--config",
        "--userdir",
        "--datadir",
        "--pairs",
        "--replay",
        "--no-replay",
        "--replay-datadir",
        "--replay-start",
        "--plot-pair",
    ):
        assert f"'{option}'" in source, option


def test_ps1_calls_venv_python_directly() -> None:
    source = PS1.read_text()
    assert ".venv\\Scripts\\python.exe" in source
    assert "Activate" not in source


# Bash wrapper and the Python entry.


def test_bash_wrapper_syntax() -> None:
    result = subprocess.run(["bash", "-n", str(BASH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bash_offers_runner_actions() -> None:
    match = re.search(r"\{([a-z,-]+)\}", help_text())
    assert match is not None
    assert match.group(1).split(",") == list(runner.ACTIONS)


def test_bash_rejects_unknown_action() -> None:
    result = subprocess.run(["bash", str(BASH), "trade"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def namespace(action: str, replay: bool | None = None) -> argparse.Namespace:
    return argparse.Namespace(action=action, replay=replay)


@pytest.mark.parametrize(
    ("action", "replay", "config", "offline", "expected"),
    [
        ("backtest", None, {}, None, True),
        ("backtest", None, {"exchange": {"key": "k", "secret": "s"}}, None, False),
        ("backtest", None, {"exchange": {"key": "k"}}, "1", True),
        ("backtest", False, {}, "1", False),
        ("plot", None, {}, None, True),
        ("dry-run", None, {}, None, False),
        ("dry-run", True, {}, None, True),
        ("dry-run", None, {}, "1", True),
        ("download", None, {}, None, False),
        ("demo", None, {"exchange": {"key": "k"}}, None, True),
    ],
)
def test_replay_default_policy(
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    replay: bool | None,
    config: dict,
    offline: str | None,
    expected: bool,
) -> None:
    if offline is None:
        monkeypatch.delenv(runner.OFFLINE_ENV, raising=False)
    else:
        monkeypatch.setenv(runner.OFFLINE_ENV, offline)
    assert runner.replay_enabled(namespace(action, replay), config) is expected


def test_dry_run_never_writes_replayed_folder(tmp_path: Path) -> None:
    args, passthrough = runner.parse_args(
        [
            "dry-run",
            "--replay",
            "--datadir",
            str(tmp_path),
            "--replay-datadir",
            str(tmp_path),
            "--userdir",
            str(tmp_path / "ud"),
        ]
    )
    with pytest.raises(SystemExit, match="time-shifted"):
        runner.RunContext(args, passthrough, tmp_path)


def test_dry_run_replay_datadir_separate(tmp_path: Path) -> None:
    args, passthrough = runner.parse_args(["dry-run", "--replay", "--userdir", str(tmp_path)])
    context = runner.RunContext(args, passthrough, tmp_path)
    assert context.datadir == tmp_path / "data" / "replay"
    assert context.replay_datadir != context.datadir


def test_passthrough_after_double_dash() -> None:
    _, passthrough = runner.parse_args(["backtest", "--", "--eps", "--breakdown", "day"])
    assert passthrough == ["--eps", "--breakdown", "day"]


def test_install_into_userdir_with_spaces(tmp_path: Path) -> None:
    userdir = tmp_path / "my user data"
    result = subprocess.run(
        ["bash", str(BASH), "install", "--userdir", str(userdir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (userdir / "strategies" / "TRMTSStrategy.py").is_file()
    assert (userdir / "freqaimodels" / "TRMTSRegressor.py").is_file()
    assert (userdir / "config_trm_ts_ci.json").is_file()
    assert "pip install -e" in result.stdout


# Through freqtrade.


@pytest.mark.slow
def test_exit_code_passed_through(tmp_path: Path) -> None:
    """freqtrade exits with 2 when it cannot load the strategy, and so does the wrapper.

    freqtrade 2026.9 exits with 0 after a configuration error (an invalid timerange) or an
    argument parser error, so those cases cannot show the pass-through.
    """
    result = subprocess.run(
        [
            "bash",
            str(BASH),
            "backtest",
            "--userdir",
            str(tmp_path / "user data"),
            "--timerange",
            "20260101-20260102",
            "--",
            "--strategy",
            "NoSuchStrategy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "NoSuchStrategy" in result.stdout + result.stderr


@pytest.mark.slow
def test_download_through_replay(tmp_path: Path) -> None:
    """freqtrade's downloader pages klines from the replay exchange without gaps or repeats."""
    source = tmp_path / "replayed candles"
    frames = write_ramp_datadir(source, n_rows=2000)
    target = tmp_path / "downloaded candles"
    # Replayed candles carry wall-clock dates, so the timerange is in wall-clock time too.
    since = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)).strftime("%Y%m%d")
    result = subprocess.run(
        [
            "bash",
            str(BASH),
            "download",
            "--replay",
            "--replay-datadir",
            str(source),
            "--datadir",
            str(target),
            "--userdir",
            str(tmp_path / "user data"),
            "--timerange",
            f"{since}-",
            "--pairs",
            "BTC/USDT",
            "ETH/USDT",
            "--",
            "--timeframes",
            "15m",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    downloaded = pd.read_feather(target / "BTC_USDT-15m.feather")
    source_frame = frames["BTC/USDT"]
    # The ramp's open is 1000 + row, which locates each downloaded candle in the source.
    rows = (downloaded["open"] - 1000.0).round().astype(int)
    offset = downloaded["date"] - (RAMP_START + pd.to_timedelta(rows * 15, unit="min"))
    assert offset.nunique() == 1
    assert offset.iloc[0].value // 1_000_000 % WEEK_MS == 0
    assert (downloaded["date"].diff().dropna() == pd.Timedelta(minutes=15)).all()
    assert rows.iloc[0] == 0
    assert downloaded["close"].to_numpy() == pytest.approx(
        source_frame["close"].to_numpy()[rows.to_numpy()]
    )

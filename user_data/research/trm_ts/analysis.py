"""Run freqtrade's lookahead-analysis and recursive-analysis and parse their verdicts.

Both commands run as ``python -m freqtrade`` subprocesses, so the results are those a user
gets from the command line. Each run adds a config overlay that sets
``trm_ts_feature_audit``: FreqAI strips the ``%`` feature columns from the dataframe it
returns to the strategy (freqtrade 2026.9, ``remove_features_from_df``), and without them
neither analysis could compare a single feature. With the flag, TRMTSStrategy merges FreqAI's
populated features back by date.

The exchange named in the configs must be reachable; in this project that is the loopback
replay exchange, whose overlay the caller passes among ``configs``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from freqtrade.configuration.directory_operations import create_userdata_dir

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
STRATEGY = "TRMTSStrategy"
AUDIT_OVERLAY = {"trm_ts_feature_audit": True}
# Wide enough that rich never truncates an indicator name in the recursive-analysis table.
TABLE_COLUMNS = "1000"
# Relative change of a feature between startup candle counts that still counts as stable.
RECURSIVE_TOLERANCE = 1e-3


@dataclass
class LookaheadResult:
    """Verdict of one lookahead-analysis run, read from its CSV export."""

    returncode: int
    total_signals: int
    biased_entry_signals: int
    biased_exit_signals: int
    biased_indicators: list[str]
    log_path: Path

    @property
    def biased_features(self) -> list[str]:
        """Biased ``%`` feature columns (the check that must stay empty)."""
        return [name for name in self.biased_indicators if name.startswith("%")]

    @property
    def biased_targets(self) -> list[str]:
        """Biased ``&`` columns; freqtrade notes that these may come from the targets."""
        return [name for name in self.biased_indicators if name.startswith("&")]

    @property
    def passed(self) -> bool:
        """True when the run analyzed at least one trade and no feature was biased."""
        return self.returncode == 0 and self.total_signals > 0 and not self.biased_features

    def _biased_other(self) -> list[str]:
        return [n for n in self.biased_indicators if not n.startswith(("%", "&"))]

    def summary(self) -> str:
        return (
            f"lookahead-analysis: {'PASS' if self.passed else 'FAIL'}: "
            f"{self.total_signals} signals analyzed, {self.biased_entry_signals} biased entries, "
            f"{self.biased_exit_signals} biased exits, biased features {self.biased_features}, "
            f"other biased columns {self.biased_targets + self._biased_other()} "
            f"(log: {self.log_path})"
        )


@dataclass
class RecursiveResult:
    """Verdict of one recursive-analysis run, parsed from its result table."""

    returncode: int
    startup_candles: list[int]
    strategy_startup: int | None
    # column -> startup candle count -> relative change of the last row's value against the
    # run with the strategy's own count (NaN where freqtrade printed "nan%")
    variance: dict[str, dict[int, float]] = field(default_factory=dict)
    log_path: Path = Path()

    def unstable_features(
        self, tolerance: float = RECURSIVE_TOLERANCE, startup: int | None = None
    ) -> dict[str, float]:
        """Return ``%`` features that still change with more than ``startup`` candles.

        freqtrade compares each count against the run with the strategy's own count, so a
        feature is stable at that count when every larger count changes it by at most
        ``tolerance`` (relative). Returns the largest change per unstable feature (NaN when
        freqtrade printed no number). startup: the count to check, the strategy's by default.
        """
        startup = self.strategy_startup if startup is None else startup
        if startup is None:
            raise ValueError("no startup candle count to check: pass startup explicitly")
        unstable = {}
        for name, by_startup in self.variance.items():
            if not name.startswith("%"):
                continue
            changes = [value for count, value in by_startup.items() if count > startup]
            if any(not math.isfinite(value) for value in changes):
                unstable[name] = math.nan
            elif changes and max(abs(value) for value in changes) > tolerance:
                unstable[name] = max(abs(value) for value in changes)
        return unstable

    def passed(self, tolerance: float = RECURSIVE_TOLERANCE) -> bool:
        return self.returncode == 0 and not self.unstable_features(tolerance)

    def summary(self, tolerance: float = RECURSIVE_TOLERANCE) -> str:
        unstable = self.unstable_features(tolerance) if self.strategy_startup else {}
        worst = max((abs(v) for v in unstable.values() if math.isfinite(v)), default=0.0)
        return (
            f"recursive-analysis: {'PASS' if self.passed(tolerance) else 'FAIL'}: "
            f"{len(self.variance)} columns vary across startup counts {self.startup_candles}; "
            f"{len(unstable)} features exceed {tolerance:.1e} at the strategy's "
            f"{self.strategy_startup} candles (largest {worst:.2e}) (log: {self.log_path})"
        )


def _freqtrade_command(
    subcommand: str,
    configs: Sequence[Path | str],
    workdir: Path,
    timerange: str,
    pairs: Sequence[str] | None,
    datadir: Path | str | None,
    userdir: Path | str | None,
    identifier: str | None,
) -> list[str]:
    overlay = workdir / "trm_ts_audit.json"
    values: dict = dict(AUDIT_OVERLAY)
    if identifier:
        values["freqai"] = {"identifier": identifier}
    overlay.write_text(json.dumps(values) + "\n")
    command = [sys.executable, "-m", "freqtrade", subcommand, "--strategy", STRATEGY]
    command += ["--strategy-path", str(REPO_ROOT / "strategies")]
    command += ["--freqaimodel-path", str(REPO_ROOT / "freqaimodels")]
    for config in (*configs, overlay):
        command += ["--config", str(config)]
    command += ["--timerange", timerange]
    if datadir is not None:
        command += ["--datadir", str(datadir)]
    if userdir is not None:
        # freqtrade refuses a user directory that lacks its standard subfolders.
        create_userdata_dir(str(userdir), create_dir=True)
        command += ["--userdir", str(userdir)]
    if pairs:
        command += ["--pairs", *pairs]
    return command


def _run(command: list[str], log_path: Path, timeout: float) -> int:
    logger.info("Running %s (log: %s)", " ".join(command), log_path)
    env = {**os.environ, "COLUMNS": TABLE_COLUMNS}
    with log_path.open("w") as log:
        try:
            completed = subprocess.run(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(
                f"{command[3]} timed out after {timeout:.0f} s; see {log_path} and shorten the "
                "timerange or raise the timeout"
            ) from err
    if completed.returncode != 0:
        logger.error("%s exited with code %d; see %s", command[3], completed.returncode, log_path)
    return completed.returncode


def run_lookahead(
    configs: Sequence[Path | str],
    workdir: Path | str,
    timerange: str,
    pairs: Sequence[str] | None = None,
    datadir: Path | str | None = None,
    userdir: Path | str | None = None,
    minimum_trades: int = 1,
    targeted_trades: int = 10,
    identifier: str | None = None,
    timeout: float = 3600.0,
) -> LookaheadResult:
    """Run ``freqtrade lookahead-analysis`` on TRMTSStrategy and parse its CSV export.

    Every analyzed trade retrains the FreqAI model twice (entry and exit cut), so the run
    takes about ``2 * targeted_trades + 1`` backtests. Each backtest deletes the models saved
    under ``freqai.identifier``; pass ``identifier`` to use a separate one. freqtrade 2026.9
    exports a result only when more than ``minimum_trades`` trades were analyzed; otherwise
    the result has 0 signals and does not pass.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    export = workdir / "lookahead.csv"
    export.unlink(missing_ok=True)
    command = _freqtrade_command(
        "lookahead-analysis", configs, workdir, timerange, pairs, datadir, userdir, identifier
    )
    command += ["--minimum-trade-amount", str(minimum_trades)]
    command += ["--targeted-trade-amount", str(targeted_trades)]
    command += ["--lookahead-analysis-exportfilename", str(export)]
    log_path = workdir / "lookahead.log"
    returncode = _run(command, log_path, timeout)
    return parse_lookahead_csv(export, returncode, log_path)


def parse_lookahead_csv(path: Path, returncode: int, log_path: Path) -> LookaheadResult:
    """Read the row of TRMTSStrategy from a lookahead-analysis CSV export.

    freqtrade writes no row when the run analyzed too few trades; that reads as 0 signals.
    """
    rows = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if not rows.empty and "strategy" in rows.columns:
        rows = rows[rows["strategy"] == STRATEGY]
    if rows.empty:
        return LookaheadResult(returncode, 0, 0, 0, [], log_path)
    row = rows.iloc[-1]
    return LookaheadResult(
        returncode=returncode,
        total_signals=int(row["total_signals"]),
        biased_entry_signals=int(row["biased_entry_signals"]),
        biased_exit_signals=int(row["biased_exit_signals"]),
        biased_indicators=_split_indicators(row["biased_indicators"]),
        log_path=log_path,
    )


def _split_indicators(cell: object) -> list[str]:
    # freqtrade joins the names with ","; no FreqAI column name contains ",".
    if not isinstance(cell, str) or not cell.strip():
        return []
    return [name.strip() for name in cell.split(",") if name.strip()]


def run_recursive(
    configs: Sequence[Path | str],
    workdir: Path | str,
    timerange: str,
    startup_candles: Sequence[int],
    pair: str | None = None,
    datadir: Path | str | None = None,
    userdir: Path | str | None = None,
    identifier: str | None = None,
    timeout: float = 3600.0,
) -> RecursiveResult:
    """Run ``freqtrade recursive-analysis`` on TRMTSStrategy and parse its table.

    startup_candles: counts to compare; freqtrade adds the strategy's own count. Each count
    is one backtest with a FreqAI training, so keep the list short. Like lookahead-analysis,
    it deletes the models saved under ``freqai.identifier``.
    """
    if not startup_candles:
        raise ValueError("startup_candles is empty; give at least one startup candle count")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    command = _freqtrade_command(
        "recursive-analysis",
        configs,
        workdir,
        timerange,
        [pair] if pair else None,
        datadir,
        userdir,
        identifier,
    )
    command += ["--startup-candle", *(str(n) for n in startup_candles)]
    log_path = workdir / "recursive.log"
    returncode = _run(command, log_path, timeout)
    result = parse_recursive_output(log_path.read_text(errors="replace"))
    result.returncode = returncode
    result.log_path = log_path
    if not result.startup_candles:
        result.startup_candles = sorted(int(n) for n in startup_candles)
    return result


_STARTUP_LOG = re.compile(r"Calculating indicators using startup candle of (\d+)\.")
_STRATEGY_HEADER = re.compile(r"^(\d+) \(from strategy\)$")


def parse_recursive_output(text: str) -> RecursiveResult:
    """Parse the log and the rich table that recursive-analysis prints.

    The table has one row per column whose last-row value changed with the startup count and
    one column per count, the strategy's marked "(from strategy)". With no change freqtrade
    prints no table, which parses as an empty ``variance``.
    """
    startups: list[int] = []
    strategy_startup = None
    variance: dict[str, dict[int, float]] = {}
    for line in text.splitlines():
        cells = _table_cells(line)
        if cells and cells[0] == "Indicators":
            startups = []
            for header in cells[1:]:
                match = _STRATEGY_HEADER.match(header)
                if match:
                    strategy_startup = int(match.group(1))
                    startups.append(strategy_startup)
                elif header.isdigit():
                    startups.append(int(header))
            continue
        if cells and startups and len(cells) == len(startups) + 1:
            variance[cells[0]] = {
                startup: _percent(value) for startup, value in zip(startups, cells[1:], strict=True)
            }
    if not startups:
        startups = sorted({int(n) for n in _STARTUP_LOG.findall(text)})
    return RecursiveResult(0, startups, strategy_startup, variance)


def _table_cells(line: str) -> list[str]:
    for separator in ("┃", "│"):
        if line.count(separator) >= 2:
            return [cell.strip() for cell in line.strip().strip(separator).split(separator)]
    return []


def _percent(cell: str) -> float:
    """Convert a table cell to a fraction; "-" (no change at that count) reads as 0."""
    text = cell.strip()
    if text == "-":
        return 0.0
    try:
        return float(text.rstrip("%")) / 100.0
    except ValueError:
        return math.nan

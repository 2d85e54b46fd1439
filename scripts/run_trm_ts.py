"""Run TRM-TS (TRMTSStrategy + TRMTSRegressor) through freqtrade.

This is the one entry behind scripts/run_trm_ts.sh and scripts/run_trm_ts.ps1.

Actions:
  download  freqtrade download-data for the configured pairs, timeframes and timerange
  backtest  backtest TRMTSStrategy with TRMTSRegressor, then print trades, profit and the
            result file
  dry-run   freqtrade trade --dry-run
  analyze   freqtrade lookahead-analysis and recursive-analysis, judged by trm_ts.analysis
  plot      freqtrade plot-dataframe for one pair, with the forecast mean and sigma bands
  install   copy the strategy, the regressor and the configs into a freqtrade user_data folder
  demo      write synthetic candles and backtest on them through the replay exchange

Replay exchange: freqtrade loads Binance's market list even for a backtest. With the replay
exchange on, the runner serves Binance's spot REST API on 127.0.0.1 from local candle files and
passes freqtrade a config overlay that points ccxt at it, so nothing leaves the machine.
``--replay``/``--no-replay`` decide; without either, the replay is on when the environment
variable TRM_TS_OFFLINE is 1, always on for demo, and otherwise on for backtest, analyze and plot
only when no config sets an exchange API key (these runs need nothing else from the exchange).
download and dry-run reach the real Binance unless asked otherwise.

freqtrade's exit code is this script's exit code. NOTE: freqtrade 2026.9 itself exits with 0
after a configuration error (such as an invalid timerange) or an unknown option, so check its
ERROR lines too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STRATEGY = "TRMTSStrategy"
FREQAIMODEL = "TRMTSRegressor"
STRATEGY_DIR = REPO_ROOT / "strategies"
FREQAIMODEL_DIR = REPO_ROOT / "freqaimodels"
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "config_trm_ts.json"
# Small model, few epochs, short training window: the settings CI runs with.
FAST_CONFIG = CONFIG_DIR / "config_trm_ts_ci.json"
SHARED_DATADIR = REPO_ROOT.parent / "shared" / "data" / "binance"
REPO_DATADIR = REPO_ROOT / "user_data" / "data" / "binance"
DEFAULT_USERDIR = REPO_ROOT / "user_data"
OFFLINE_ENV = "TRM_TS_OFFLINE"

ACTIONS = ("download", "backtest", "dry-run", "analyze", "plot", "install", "demo")
REPLAY_AUTO_ACTIONS = ("backtest", "analyze", "plot")

# Demo: 30 days of seeded 15m candles, two weeks backtested with weekly retraining on the fast
# config with a 7-day training window. The first backtest day needs the training window plus
# the strategy's startup candles (400, about 4 days) before it.
DEMO_PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
DEMO_START = "2025-01-01"
DEMO_DAYS = 30
DEMO_TIMERANGE = "20250115-20250129"
DEMO_TIMEFRAMES = ("15m", "1h")
# Startup candle counts recursive-analysis compares with the strategy's own (400).
ANALYZE_STARTUP_CANDLES = (800,)
DEMO_FREQAI = {"identifier": "trm_ts_demo", "train_period_days": 7, "backtest_period_days": 7}


# Arguments and configuration.


def default_datadir() -> Path:
    """Return ../shared/data/binance beside the repository if present, else user_data's."""
    return SHARED_DATADIR if SHARED_DATADIR.is_dir() else REPO_DATADIR


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="run_trm_ts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after '--' go to freqtrade unchanged. Put the action first.",
    )

    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--timerange", help="freqtrade timerange, such as 20250601-20251201")
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        help="freqtrade config file; repeat to layer several (default: "
        f"{DEFAULT_CONFIG.relative_to(REPO_ROOT)}, or the fast CI config if that is missing)",
    )
    parser.add_argument(
        "--userdir", type=Path, help=f"freqtrade user_data folder (default: {DEFAULT_USERDIR})"
    )
    parser.add_argument(
        "--datadir",
        type=Path,
        help="candle folder freqtrade reads; default: ../shared/data/binance beside the "
        "repository if present, else user_data/data/binance. download and dry-run write to it "
        "and default to USERDIR/data/binance (USERDIR/data/replay with the replay exchange)",
    )
    parser.add_argument("--pairs", nargs="+", help="pairs such as BTC/USDT (default: config)")

    replay = parser.add_mutually_exclusive_group()
    replay.add_argument(
        "--replay",
        dest="replay",
        action="store_true",
        default=None,
        help="serve Binance's API from local candles on 127.0.0.1 (default: see 'Replay "
        "exchange' above)",
    )
    replay.add_argument(
        "--no-replay",
        dest="replay",
        action="store_false",
        help="reach the real Binance even where the replay exchange is the default",
    )
    parser.add_argument(
        "--replay-datadir",
        type=Path,
        help="candle folder the replay exchange serves (default: --datadir for backtest, "
        "analyze, plot and demo, else the default candle folder)",
    )
    parser.add_argument(
        "--replay-start",
        help="data date the replayed clock starts at, such as 2026-02-01 (dry-run; default: two "
        "days before the newest candle)",
    )
    parser.add_argument("--plot-pair", help="pair to plot (plot; default: the first pair)")

    if argv is None:
        argv = sys.argv[1:]
    passthrough: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1 :]
    return parser.parse_args(argv), passthrough


def resolve_configs(args: argparse.Namespace) -> list[Path]:
    if args.config:
        configs = [path.resolve() for path in args.config]
    elif args.action == "demo" or not DEFAULT_CONFIG.is_file():
        configs = [FAST_CONFIG]
    else:
        configs = [DEFAULT_CONFIG]
    for path in configs:
        if not path.is_file():
            raise SystemExit(f"error: config file {path} not found; pass --config PATH")
    return configs


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, merging nested dicts key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_merged_config(configs: list[Path]) -> dict[str, Any]:
    """Merge the config files as freqtrade does: later files override earlier ones."""
    # freqtrade parses configs with rapidjson, allowing comments and trailing commas.
    import rapidjson

    merged: dict[str, Any] = {}
    for path in configs:
        with path.open() as file:
            try:
                content = rapidjson.load(
                    file, parse_mode=rapidjson.PM_COMMENTS | rapidjson.PM_TRAILING_COMMAS
                )
            except rapidjson.JSONDecodeError as err:
                raise SystemExit(f"error: config file {path} is not valid JSON: {err}") from err
        merged = merge_dicts(merged, content)
    return merged


def has_api_key(config: dict[str, Any]) -> bool:
    exchange = config.get("exchange", {})
    return any(exchange.get(name) for name in ("key", "api_key", "apiKey", "secret"))


def replay_enabled(args: argparse.Namespace, config: dict[str, Any]) -> bool:
    if args.replay is not None:
        return args.replay
    if args.action == "demo" or os.environ.get(OFFLINE_ENV) == "1":
        return True
    return args.action in REPLAY_AUTO_ACTIONS and not has_api_key(config)


def config_timeframes(config: dict[str, Any]) -> list[str]:
    """Return the strategy timeframe and FreqAI's include_timeframes, without repeats."""
    timeframes = [config.get("timeframe", "15m")]
    feature_parameters = config.get("freqai", {}).get("feature_parameters", {})
    for timeframe in feature_parameters.get("include_timeframes", []):
        if timeframe not in timeframes:
            timeframes.append(timeframe)
    return timeframes


def corr_pairs(config: dict[str, Any]) -> list[str]:
    """Return FreqAI's correlated pairs (include_corr_pairlist)."""
    feature_parameters = config.get("freqai", {}).get("feature_parameters", {})
    return list(feature_parameters.get("include_corr_pairlist", []))


def config_pairs(config: dict[str, Any]) -> list[str]:
    """Return the whitelist plus FreqAI's correlated pairs, without repeats."""
    pairs = list(config.get("exchange", {}).get("pair_whitelist", []))
    return pairs + [pair for pair in corr_pairs(config) if pair not in pairs]


# Setup steps.


def ensure_userdir(userdir: Path) -> None:
    """Create the user_data folder and freqtrade's subfolders in it, as create-userdir does."""
    from freqtrade.configuration.directory_operations import create_userdata_dir

    create_userdata_dir(str(userdir), create_dir=True)


def configure_logging(userdir: Path) -> Path:
    """Log the replay exchange's requests to a file and its warnings to the console."""
    log_path = userdir / "logs" / "replay_exchange.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path)
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("run_trm_ts: %(name)s %(levelname)s %(message)s"))
    replay_logger = logging.getLogger("trm_ts.replay")
    replay_logger.setLevel(logging.INFO)
    replay_logger.addHandler(file_handler)
    replay_logger.addHandler(console)
    return log_path


def say(message: str) -> None:
    print(f"run_trm_ts: {message}", flush=True)


@contextmanager
def replay_exchange(
    enabled: bool,
    datadir: Path,
    pairs: list[str],
    timeframes: list[str],
    replay_start: str | None,
    workdir: Path,
) -> Iterator[list[Path]]:
    """Start the replay exchange when enabled and yield the extra configs that point at it."""
    if not enabled:
        yield []
        return
    from trm_ts.replay import ReplayExchange

    try:
        exchange = ReplayExchange(datadir, pairs, timeframes, replay_start=replay_start)
    except ValueError as err:
        raise SystemExit(f"error: cannot start the replay exchange: {err}") from err
    with exchange:
        overlay = exchange.write_config_overlay(workdir / "replay_overlay.json")
        say(f"replay exchange on {exchange.url} serving {', '.join(pairs)} from {datadir}")
        try:
            yield [overlay]
        finally:
            served = sum(exchange.request_counts.values())
            unserved = dict(exchange.unserved_counts)
            say(f"replay exchange stopped after {served} requests; unserved: {unserved or 'none'}")


def write_json(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


# Running freqtrade.


def freqtrade(subcommand: str, configs: list[Path], userdir: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "freqtrade", subcommand]
    for path in configs:
        command += ["--config", str(path)]
    return command + ["--userdir", str(userdir), *extra]


def strategy_args() -> list[str]:
    return [
        "--strategy",
        STRATEGY,
        "--strategy-path",
        str(STRATEGY_DIR),
        "--freqaimodel",
        FREQAIMODEL,
        "--freqaimodel-path",
        str(FREQAIMODEL_DIR),
    ]


def run(command: list[str]) -> int:
    """Run a child command in the foreground and return its exit code.

    Ctrl-C reaches the child through the terminal's process group, so this process only waits
    for it to stop. SIGTERM sent to this process is passed on to the child.
    """
    say("running " + " ".join(_quote(part) for part in command))
    env = dict(os.environ)
    # requests (ccxt's sync client) honours proxy variables; loopback must never go through one.
    env["NO_PROXY"] = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    env["no_proxy"] = env["NO_PROXY"]
    child = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    try:
        while True:
            try:
                returncode = child.wait()
                break
            except KeyboardInterrupt:
                say("interrupted; waiting for freqtrade to stop")
    finally:
        signal.signal(signal.SIGTERM, previous)
    return shell_exit_code(returncode)


def shell_exit_code(returncode: int) -> int:
    """Map Popen's -N for a child killed by signal N to the shell's 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part else part


def print_backtest_summary(userdir: Path) -> None:
    """Print trades and profit of the newest backtest result and where it is stored."""
    from freqtrade.data.btanalysis import get_latest_backtest_filename, load_backtest_stats

    results = userdir / "backtest_results"
    try:
        filename = results / get_latest_backtest_filename(results)
        stats = load_backtest_stats(filename)
    except ValueError as err:
        say(f"no backtest result to summarize in {results}: {err}")
        return
    for name, strategy in stats.get("strategy", {}).items():
        currency = strategy.get("stake_currency", "")
        say(
            f"backtest {name}: {strategy['total_trades']} trades, profit "
            f"{strategy['profit_total_abs']:.3f} {currency} ({100 * strategy['profit_total']:.2f}%)"
            f", {strategy['backtest_start']} -> {strategy['backtest_end']}"
        )
    say(f"backtest result: {filename}")


# Actions.


def action_download(ctx: RunContext) -> int:
    extra = ["--datadir", str(ctx.datadir), "--timeframes", *config_timeframes(ctx.config)]
    extra += ["--pairs", *ctx.pairs]
    if ctx.args.timerange:
        extra += ["--timerange", ctx.args.timerange]
    return run(freqtrade("download-data", ctx.configs, ctx.userdir, *extra, *ctx.passthrough))


def action_backtest(ctx: RunContext, timerange: str | None = None) -> int:
    extra = ["--datadir", str(ctx.datadir), *strategy_args()]
    timerange = timerange or ctx.args.timerange
    if timerange:
        extra += ["--timerange", timerange]
    returncode = run(freqtrade("backtesting", ctx.configs, ctx.userdir, *extra, *ctx.passthrough))
    if returncode == 0:
        print_backtest_summary(ctx.userdir)
    return returncode


def action_dry_run(ctx: RunContext) -> int:
    if ctx.args.timerange:
        raise SystemExit("error: --timerange does not apply to dry-run")
    db_url = "sqlite:///" + (ctx.userdir / "tradesv3.dryrun.sqlite").as_posix()
    extra = ["--dry-run", "--datadir", str(ctx.datadir), "--db-url", db_url, *strategy_args()]
    return run(freqtrade("trade", ctx.configs, ctx.userdir, *extra, *ctx.passthrough))


def action_analyze(ctx: RunContext) -> int:
    """Run lookahead-analysis, then recursive-analysis, through trm_ts.analysis.

    Returns freqtrade's exit code when it failed, 1 when an analysis found a biased or unstable
    feature, else 0.
    """
    from trm_ts import analysis

    timerange = ctx.args.timerange or ctx.config.get("timerange")
    if not timerange:
        raise SystemExit("error: analyze needs --timerange (the configs set none)")
    if ctx.passthrough:
        raise SystemExit("error: analyze takes no freqtrade arguments after '--'")
    # Both analyses delete the models saved under freqai.identifier, so a separate identifier
    # keeps the models of earlier backtests and dry-runs.
    identifier = ctx.config.get("freqai", {}).get("identifier", "trm_ts") + "_analysis"
    workdir = ctx.userdir / "analysis"
    common = {"datadir": ctx.datadir, "userdir": ctx.userdir, "identifier": identifier}

    say(f"running lookahead-analysis on {timerange} (logs in {workdir})")
    lookahead = analysis.run_lookahead(
        ctx.configs, workdir, timerange, pairs=ctx.args.pairs, **common
    )
    say(lookahead.summary())
    if lookahead.returncode != 0:
        return shell_exit_code(lookahead.returncode)

    say(f"running recursive-analysis on {timerange} for {ctx.pairs[0]}")
    recursive = analysis.run_recursive(
        ctx.configs, workdir, timerange, ANALYZE_STARTUP_CANDLES, pair=ctx.pairs[0], **common
    )
    say(recursive.summary())
    if recursive.returncode != 0:
        return shell_exit_code(recursive.returncode)
    return 0 if lookahead.passed and recursive.passed() else 1


def action_plot(ctx: RunContext) -> int:
    pair = ctx.args.plot_pair or ctx.pairs[0]
    extra = ["--datadir", str(ctx.datadir), *strategy_args(), "--pairs", pair]
    if ctx.args.timerange:
        extra += ["--timerange", ctx.args.timerange]
    returncode = run(
        freqtrade("plot-dataframe", ctx.configs, ctx.userdir, *extra, *ctx.passthrough)
    )
    if returncode == 0:
        say(f"plot written to {ctx.userdir / 'plot'}")
    return returncode


def action_install(ctx: RunContext) -> int:
    copies = [
        (STRATEGY_DIR / f"{STRATEGY}.py", ctx.userdir / "strategies"),
        (FREQAIMODEL_DIR / f"{FREQAIMODEL}.py", ctx.userdir / "freqaimodels"),
        *[(path, ctx.userdir) for path in sorted(CONFIG_DIR.glob("*.json"))],
    ]
    for source, folder in copies:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, folder / source.name)
        say(f"copied {source.relative_to(REPO_ROOT)} to {folder}")
    say(
        "the plugins import the trm_ts package: install it into the Python that runs freqtrade "
        f'with: python -m pip install -e "{REPO_ROOT}"'
    )
    say(
        f'then run, for example: freqtrade backtesting --userdir "{ctx.userdir}" --config '
        f'"{ctx.userdir / FAST_CONFIG.name}" --strategy {STRATEGY} --freqaimodel {FREQAIMODEL}'
    )
    return 0


def write_demo_candles(datadir: Path, pairs: list[str]) -> None:
    """Write seeded synthetic candles in freqtrade's feather format, one seed per pair."""
    from trm_ts.data import synthetic_candles
    from trm_ts.replay.candles import CandleSeries, resample_series, write_candles

    n_rows = DEMO_DAYS * 96
    for seed, pair in enumerate(pairs):
        frame = synthetic_candles(n_rows=n_rows, seed=seed, timeframe="15m", start=DEMO_START)
        write_candles(frame, datadir, pair, "15m")
        series = CandleSeries.from_frame(pair, "15m", frame)
        for timeframe in DEMO_TIMEFRAMES[1:]:
            write_candles(resample_series(series, timeframe).to_frame(), datadir, pair, timeframe)
    say(f"wrote {DEMO_DAYS} days of synthetic candles for {', '.join(pairs)} to {datadir}")


def action_demo(ctx: RunContext) -> int:
    ctx.configs.append(write_json(ctx.workdir / "demo.json", {"freqai": DEMO_FREQAI}))
    return action_backtest(ctx, timerange=ctx.args.timerange or DEMO_TIMERANGE)


ACTION_FUNCTIONS = {
    "download": action_download,
    "backtest": action_backtest,
    "dry-run": action_dry_run,
    "analyze": action_analyze,
    "plot": action_plot,
    "install": action_install,
    "demo": action_demo,
}


class RunContext:
    """Resolved options of one run: configs, folders, pairs and the replay exchange's configs."""

    def __init__(self, args: argparse.Namespace, passthrough: list[str], workdir: Path) -> None:
        self.args = args
        self.passthrough = passthrough
        self.workdir = workdir
        self.userdir = (args.userdir or DEFAULT_USERDIR).resolve()
        self.configs = resolve_configs(args)
        self.config = load_merged_config(self.configs) if args.action != "install" else {}
        self.replay = args.action != "install" and replay_enabled(args, self.config)
        self.datadir, self.replay_datadir = self._datadirs()
        self.pairs = (
            list(args.pairs)
            if args.pairs
            else list(DEMO_PAIRS if args.action == "demo" else config_pairs(self.config))
        )
        if args.pairs:
            # freqtrade's trade command has no --pairs option, so pairs go in a config file.
            self.configs.append(
                write_json(workdir / "pairs.json", {"exchange": {"pair_whitelist": self.pairs}})
            )

    def _datadirs(self) -> tuple[Path, Path]:
        """Return the folder freqtrade uses and the folder the replay exchange serves."""
        action, args = self.args.action, self.args
        if action == "demo":
            datadir = (args.datadir or self.userdir / "data" / "demo").resolve()
            return datadir, datadir
        writes = action in ("download", "dry-run")
        if args.datadir:
            datadir = args.datadir.resolve()
        elif writes and self.replay:
            # Never write time-shifted replay candles into a folder of real candles.
            datadir = self.userdir / "data" / "replay"
        elif writes:
            datadir = self.userdir / "data" / "binance"
        else:
            datadir = default_datadir().resolve()
        if args.replay_datadir:
            replay_datadir = args.replay_datadir.resolve()
        else:
            replay_datadir = default_datadir().resolve() if writes else datadir
        if writes and self.replay and datadir == replay_datadir:
            raise SystemExit(
                f"error: {action} through the replay exchange would write time-shifted candles "
                f"into {datadir}, the folder it replays; pass another --datadir"
            )
        return datadir, replay_datadir


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="run_trm_ts_") as tmp:
        ctx = RunContext(args, passthrough, Path(tmp))
        if args.action != "install":
            ensure_userdir(ctx.userdir)
        log_path = configure_logging(ctx.userdir) if ctx.replay else None
        if args.action == "demo":
            write_demo_candles(ctx.datadir, ctx.pairs)
        # FreqAI's correlated pairs must be listed by the exchange even when --pairs omits them.
        replay_pairs = ctx.pairs + [p for p in corr_pairs(ctx.config) if p not in ctx.pairs]
        timeframes = config_timeframes(ctx.config)
        with replay_exchange(
            ctx.replay, ctx.replay_datadir, replay_pairs, timeframes, args.replay_start, ctx.workdir
        ) as overlays:
            ctx.configs += overlays
            if log_path is not None:
                say(f"replay exchange requests are logged to {log_path}")
            return ACTION_FUNCTIONS[args.action](ctx)


if __name__ == "__main__":
    sys.exit(main())

<#
.SYNOPSIS
Run TRM-TS (TRMTSStrategy + TRMTSRegressor) through freqtrade.

.DESCRIPTION
A thin wrapper over scripts/run_trm_ts.py, which documents the actions and options;
scripts/run_trm_ts.sh is the bash twin. The virtual environment's Python is called directly,
so neither an activation script nor a change of execution policy is needed. The exit code is
freqtrade's.

.EXAMPLE
scripts/run_trm_ts.ps1 -Action demo

.EXAMPLE
scripts/run_trm_ts.ps1 -Action backtest -Timerange 20240601-20241201 -Pairs BTC/USDT,ETH/USDT
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true, Position = 0)]
    [ValidateSet('download', 'backtest', 'dry-run', 'analyze', 'plot', 'install', 'demo')]
    [string]$Action,

    # freqtrade timerange, such as 20240601-20241201.
    [string]$Timerange,

    # One or more freqtrade config files, layered in order.
    [string[]]$Config,

    # freqtrade user_data folder (default: user_data in the repository).
    [string]$Userdir,

    # Candle folder (default: ../shared/data/binance if present, else user_data/data/binance).
    [string]$Datadir,

    # Pairs such as BTC/USDT,ETH/USDT (default: the config's whitelist).
    [string[]]$Pairs,

    # Serve Binance's API from local candles on 127.0.0.1.
    [switch]$Replay,

    # Reach the real Binance even where the replay exchange is the default.
    [switch]$NoReplay,

    # Candle folder the replay exchange serves.
    [string]$ReplayDatadir,

    # Data date the replayed clock starts at (dry-run), such as 2026-02-01.
    [string]$ReplayStart,

    # Pair to plot (plot action).
    [string]$PlotPair,

    # Further arguments, passed to freqtrade unchanged.
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$FreqtradeArgs
)

$ErrorActionPreference = 'Stop'
$repoRoot = Split-Path -Parent $PSScriptRoot

# Windows venvs keep Python in Scripts\, Linux and macOS ones in bin/.
$python = Join-Path $repoRoot '.venv\Scripts\python.exe'
if (-not (Test-Path -LiteralPath $python)) {
    $python = Join-Path (Join-Path (Join-Path $repoRoot '.venv') 'bin') 'python'
}
if (-not (Test-Path -LiteralPath $python)) {
    [Console]::Error.WriteLine("run_trm_ts: no virtual environment in $repoRoot\.venv. Set it up first:")
    [Console]::Error.WriteLine('  python -m venv .venv; .venv\Scripts\python.exe -m pip install -r requirements.txt')
    exit 2
}

$arguments = @((Join-Path $PSScriptRoot 'run_trm_ts.py'), $Action)
if ($Timerange) { $arguments += @('--timerange', $Timerange) }
foreach ($path in $Config) { $arguments += @('--config', $path) }
if ($Userdir) { $arguments += @('--userdir', $Userdir) }
if ($Datadir) { $arguments += @('--datadir', $Datadir) }
if ($Pairs) { $arguments += @('--pairs') + $Pairs }
if ($Replay) { $arguments += '--replay' }
if ($NoReplay) { $arguments += '--no-replay' }
if ($ReplayDatadir) { $arguments += @('--replay-datadir', $ReplayDatadir) }
if ($ReplayStart) { $arguments += @('--replay-start', $ReplayStart) }
if ($PlotPair) { $arguments += @('--plot-pair', $PlotPair) }
if ($FreqtradeArgs) { $arguments += @('--') + $FreqtradeArgs }

& $python @arguments
exit $LASTEXITCODE

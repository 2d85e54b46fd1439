#!/usr/bin/env bash
# Run TRM-TS through freqtrade. A thin wrapper over scripts/run_trm_ts.py, which documents the
# actions and options; scripts/run_trm_ts.ps1 is the PowerShell twin.
#
#   scripts/run_trm_ts.sh demo
#   scripts/run_trm_ts.sh backtest --timerange 20251201-20260101 --pairs BTC/USDT ETH/USDT
#
# The virtual environment's Python is called directly, so no activation is needed. The exit
# code is freqtrade's.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${repo_root}/.venv/bin/python"
if [[ ! -x "$python" ]]; then
    echo "run_trm_ts: ${python} not found. Set up the environment first:" >&2
    echo "  python3 -m venv .venv && .venv/bin/python -m pip install -r requirements.txt" >&2
    exit 2
fi
exec "$python" "${repo_root}/scripts/run_trm_ts.py" "$@"

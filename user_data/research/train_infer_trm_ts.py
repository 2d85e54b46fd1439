"""Train TRM-TS on synthetic candles or an OHLCV file and report forecast metrics.

Examples, from the repository root:

    python user_data/research/train_infer_trm_ts.py --epochs 20 --device cpu
    python user_data/research/train_infer_trm_ts.py --csv candles.csv --horizon 4
    python user_data/research/train_infer_trm_ts.py --load user_data/models/trm_ts_cli.pt

All logic lives in the ``trm_ts`` package (``trm_ts.cli``); this file is its entry point.
"""

import sys
from pathlib import Path

# Running this file directly puts its folder on sys.path, so the package imports from a
# plain checkout. An installed trm_ts is imported the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trm_ts.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

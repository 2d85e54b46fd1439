"""TRM-TS: a tiny recursive model for probabilistic crypto return forecasting.

``from trm_ts import trm_ts`` builds the network. Each submodule contains one concept:
model (network blocks), losses (Gaussian NLL), data (candle files, synthetic candles,
scaling, window sets), features (TA-Lib indicators, regime, calendar, cross-asset context),
dataset (splits), training (fit and batched predict), checkpoint (plain-data checkpoints),
metrics and baselines.
"""

from trm_ts.model import TRMTS, TRMTSConfig, count_parameters, trm_ts

__all__ = ["TRMTS", "TRMTSConfig", "count_parameters", "trm_ts"]
__version__ = "0.1.0"

"""FreqAI integration of TRM-TS; ``freqaimodels/TRMTSRegressor.py`` delegates here.

The design notes (persistence, pipelines, history, drift) are in ``trm_ts.freqai.adapter``.
"""

from trm_ts.freqai.adapter import TRMTSAdapter
from trm_ts.freqai.params import TRMTSParams
from trm_ts.freqai.pipeline import PassthroughColumns, TargetSigmaScaler
from trm_ts.freqai.state import TRMTSFreqaiModel
from trm_ts.freqai.windows import ColumnRoles

__all__ = [
    "ColumnRoles",
    "PassthroughColumns",
    "TRMTSAdapter",
    "TRMTSFreqaiModel",
    "TRMTSParams",
    "TargetSigmaScaler",
]

"""DIFF2: differential private optimization via gradient differences (DIFF2): https://arxiv.org/abs/2302.03884

DIFF2-GD against DP-GD (its restart interval T = 1) on simulated clients: ``run(model, data, *, config=PrivateConfig(...),
steps, seed)`` yields one frozen :class:`~core.privacy.dynamics.PrivateState` per round; the noise is calibrated
to a target (ε, δ) over the whole run and the ε spent is counted by opacus's RDP accountant.
"""

from core.privacy.accountant import calibrate, classic_epsilon, ledger, rdp_epsilon, regime_ratio
from core.privacy.config import PrivateConfig
from core.privacy.data import DATASETS, MODELS, Dataset, load
from core.privacy.dynamics import PrivateState, run

__all__ = [
    "DATASETS",
    "MODELS",
    "Dataset",
    "PrivateConfig",
    "PrivateState",
    "calibrate",
    "classic_epsilon",
    "ledger",
    "load",
    "rdp_epsilon",
    "regime_ratio",
    "run",
]

"""TinyML deploy: export models to C, check parity and footprint on a target, write bundles.

Examples
--------
>>> from sklearn.tree import DecisionTreeClassifier
>>> from retrainer.deploy.tinyml import export_c
>>> export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])).task
'classification'
"""

from retrainer.deploy.tinyml.bundle import Bundle, verify_bundle, write_bundle
from retrainer.deploy.tinyml.check import TargetReport, check_target
from retrainer.deploy.tinyml.export import CExport, export_c, export_c_emlearn
from retrainer.deploy.tinyml.footprint import Footprint, measure_footprint
from retrainer.deploy.tinyml.latency import Latency, measure_latency
from retrainer.deploy.tinyml.parity import ParityResult, check_parity
from retrainer.deploy.tinyml.quantize import QuantizedMLP, quantize_mlp
from retrainer.deploy.tinyml.target import DeployTarget

__all__ = [
    "Bundle",
    "CExport",
    "DeployTarget",
    "Footprint",
    "Latency",
    "ParityResult",
    "QuantizedMLP",
    "TargetReport",
    "check_parity",
    "check_target",
    "export_c",
    "export_c_emlearn",
    "measure_footprint",
    "measure_latency",
    "quantize_mlp",
    "verify_bundle",
    "write_bundle",
]

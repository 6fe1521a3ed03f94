"""TinyML deploy: export models to C, check parity and footprint on a target, write bundles.

The names are imported on first use: the exporters import scikit-learn, which a command that
only reads a deploy target's budget (the configuration's validation) should not pay for.

Examples
--------
>>> from sklearn.tree import DecisionTreeClassifier
>>> from retrainer.deploy.tinyml import export_c
>>> export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])).task
'classification'
"""

import importlib

_WHERE = {
    "Bundle": "bundle",
    "verify_bundle": "bundle",
    "write_bundle": "bundle",
    "TargetReport": "check",
    "check_target": "check",
    "CExport": "export",
    "export_c": "export",
    "export_c_emlearn": "export",
    "Footprint": "footprint",
    "measure_footprint": "footprint",
    "Latency": "latency",
    "measure_latency": "latency",
    "ParityResult": "parity",
    "check_parity": "parity",
    "QuantizedMLP": "quantize",
    "quantize_mlp": "quantize",
    "DeployTarget": "target",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        module = importlib.import_module(f"retrainer.deploy.tinyml.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'retrainer.deploy.tinyml' has no attribute {name!r}")

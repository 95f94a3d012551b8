"""A module that reads another's private name (tests/test_layers.py)."""
from quantbench.report import findings

VALUE = findings._within_quality

"""promptcls: train, compare and promote prompt classifiers (0 benign, 1 suspicious, 2 malicious) with MLflow.

Importing the package has no side effects: nothing is created, no tracking URI is set.
"""

__version__ = "0.1.0"

LABELS = ("benign", "suspicious", "malicious")
"""Class names indexed by label id."""

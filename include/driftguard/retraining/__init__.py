"""One retraining run and what it relies on: training a candidate with its reference, the
champion-vs-challenger gate (pure), the servability check, shadow evidence, and the MLflow registry's
guarded, crash-safe alias moves with their recovery."""

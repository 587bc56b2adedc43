"""One monitoring run: its steps (`monitor.FLOW`), the data-quality suite (Great Expectations), the
per-feature drift tests (Evidently) and the retrain policy, a pure function of what the run found."""

"""What people read: HTML reports written next to each run, alerts, the runbook page, a model's health
in words, and the one Jinja2 environment every page renders through."""

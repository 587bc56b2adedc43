"""Feature-log data that tries to run script in a report: HTML in category values and a feature name.

Every payload, if it ever ran, would set document.title to a string starting with MARKER, so a
browser test checks the title (and looks for the injected elements); the unit tests check the
raw HTML. `windows` gives a reference and a current window in which the payload feature and
`region` drift (so Evidently plots them) and whose payload categories are unseen (so GX lists
them under "Sampled Unexpected Values", which shows the first unexpected rows: the payloads
come in turn, so each of them is among those).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from driftguard.contract import ModelContract
from driftguard.testing import generate_log, synthetic_contract

MARKER = "XSS"
PAYLOADS = (
    f"</script><script>document.title='{MARKER}-script'</script>",  # closes the script holding JSON
    f"<img src=x onerror=\"document.title='{MARKER}-img'\">",  # markup in an HTML cell
    f'"><svg onload="document.title=\'{MARKER}-quote\'">',  # breaks out of a quoted attribute
    f"';document.title='{MARKER}-js';'<!--",  # breaks out of a JS string, opens a script comment
)
FEATURE = f"cat_b</script><script>document.title='{MARKER}-feature'</script><img src=x onerror=document.title='x'>"
"""A categorical feature's name (cat_b of driftguard.testing's log, renamed)."""
DOMAIN_VALUE = "R&D <west>"
"""Declared in region's contract domain: GX writes it as an expectation parameter, not a cell."""
INJECTED_ELEMENTS = "img[src='x'], svg[onload], script:not([src])[data-xss]"
"""CSS selector of elements the payloads would add to a page if they were parsed as markup."""


def contract(name: str, url: str = "sqlite:///unused.db") -> ModelContract:
    """synthetic_contract with cat_b renamed to FEATURE and region's domain declared (with DOMAIN_VALUE)."""
    base = synthetic_contract(url=url, name=name)
    features = [
        {**f.model_dump(mode="json", exclude_defaults=True), "name": FEATURE if f.name == "cat_b" else f.name}
        for f in base.features
    ]
    for f in features:
        if f["name"] == "region":
            f["domain"] = ["north", "south", "east", "west", DOMAIN_VALUE]
    return synthetic_contract(url=url, name=name, overrides={"features": features})


def windows(start_ref: datetime, start_cur: datetime, rows: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference (clean) and current window: a third of FEATURE and region values are payloads."""
    reference, _ = generate_log("binary_classification", start=start_ref, days=1, rows_per_day=rows, seed=1)
    current, _ = generate_log("binary_classification", start=start_cur, days=1, rows_per_day=rows, seed=2)
    reference = reference.rename(columns={"cat_b": FEATURE})
    current = current.rename(columns={"cat_b": FEATURE})
    rng = np.random.default_rng(3)
    for column in (FEATURE, "region"):
        hit = rng.random(len(current)) < 1 / 3
        # in turn, so the first few unexpected rows (GX's sample) hold every payload
        current.loc[hit, column] = [PAYLOADS[i % len(PAYLOADS)] for i in range(int(hit.sum()))]
    return reference, current

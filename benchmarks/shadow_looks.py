"""How often batch shadow scoring promotes a challenger that is no better than the champion.

Every shadow window is another look at the pooled CI (docs/gate.md, "Batch shadow scoring"). This
replays sessions with the pure functions only (driftguard.retraining.shadow, no stores): a challenger with
exactly the champion's skill, a holdout, then up to `promotion.shadow.max_windows` windows, and
counts how each session ends.

    PYTHONPATH=include:. python -m benchmarks.shadow_looks --sessions 200
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import numpy as np
import pandas as pd
from driftguard.retraining import shadow as sh
from driftguard.testing import synthetic_contract


def _rows(n: int, rng: np.random.Generator, prefix: str) -> pd.DataFrame:
    """Paired rows where both models see the signal through the same amount of noise: a tie."""
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-1.5 * x))).astype(float)
    champion = 1 / (1 + np.exp(-(x + rng.normal(size=n))))
    challenger = 1 / (1 + np.exp(-(x + rng.normal(size=n))))
    ids = [f"{prefix}-{i}" for i in range(n)]
    return pd.DataFrame(
        {sh.ID: ids, sh.Y: y, sh.CHAMPION: champion, sh.CHALLENGER: challenger, f"{sh.SEGMENT}region": rng.choice(
            ["north", "south"], n)}
    )  # fmt: skip


def replay(*, sessions: int, mode: str, margin: str, holdout: int, window: int, samples: int) -> Counter[str]:
    contract = synthetic_contract(
        url="sqlite:///unused.db",
        prediction=False,
        overrides={"promotion": {"bootstrap": {"samples": samples}, "mode": mode, "margin": margin}},
    )
    cap = contract.promotion.shadow.max_windows
    ends: Counter[str] = Counter()
    for seed in range(sessions):
        rng = np.random.default_rng(seed)
        parts = {sh.HOLDOUT: _rows(holdout, rng, "h")}
        first = sh.judge(contract, parts[sh.HOLDOUT]).outcome
        if first != "insufficient_evidence":
            ends[f"registration: {first}"] += 1
            continue
        for k in range(1, cap + 1):
            parts[f"w{k:03d}"] = _rows(window, rng, f"w{k}")
            pooled = sh.pool(parts)
            decision = sh.decide(
                sh.judge(contract, pooled), windows=k, rows=len(pooled), holdout_rows=holdout, max_windows=cap
            )
            if decision.terminal:
                ends[f"shadow: {decision.outcome}"] += 1
                break
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--mode", default="superiority")
    parser.add_argument("--margin", default="1%")
    parser.add_argument("--holdout", type=int, default=30)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the gate logs every verdict
    ends = replay(
        sessions=args.sessions, mode=args.mode, margin=args.margin, holdout=args.holdout, window=args.window,
        samples=args.samples,
    )  # fmt: skip
    promoted = ends["registration: promote"] + ends["shadow: promote"]
    for key, n in sorted(ends.items()):
        print(f"{key:28s} {n:5d}")
    print(f"false promotions: {promoted} of {args.sessions} ({promoted / args.sessions:.1%})")


if __name__ == "__main__":
    main()

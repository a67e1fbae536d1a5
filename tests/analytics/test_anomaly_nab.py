"""The NAB development subset, end to end (skipped when the shared benchmark folder is absent).

Runs in a few seconds: all 34 files advance together as one vectorised batch.
"""

from __future__ import annotations

import pytest

from agri import nab

SHARED = nab.default_shared_dir()
pytestmark = pytest.mark.skipif(
    not (SHARED / "nab" / "combined_windows.json").exists()
    or not (SHARED / "tools" / "nabscore.py").exists(),
    reason="shared NAB subset or scorer not present next to the repository",
)

#: achieved with the default configuration: standard 72.04, low FP 67.88, low FN 75.39
MINIMUM = {"standard": 70.0, "reward_low_FP_rate": 65.5, "reward_low_FN_rate": 73.0}


def test_nab_subset_scores() -> None:
    data_dir = SHARED / "nab" / "data"
    labels = SHARED / "nab" / "combined_windows.json"
    series = nab.load_corpus(data_dir)
    assert len(series) == 34
    scores = nab.score_corpus(series)
    for name, s in scores.items():
        finite = s[~(s != s)]
        assert ((finite >= 0) & (finite <= 1)).all(), name
    scorer = nab.load_scorer(SHARED / "tools" / "nabscore.py")
    res = nab.evaluate(scorer, labels, data_dir, scores)
    for profile, floor in MINIMUM.items():
        assert res[profile]["score"] >= floor, (profile, res[profile]["score"])


def test_nab_command_prints_three_profiles() -> None:
    import json

    from typer.testing import CliRunner

    from agri.cli.main import app

    res = CliRunner().invoke(app, ["anomaly", "nab", "--json", "--leave-one-out"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["profiles"]) == set(MINIMUM)
    assert out["profiles"]["standard"] >= MINIMUM["standard"]
    assert set(out["leave_one_category_out"]) == set(MINIMUM)

"""Adoption: which candidate of a benchmark report becomes the champion, recorded in the ledger.

"Adoption means passing the suite": a candidate is adoptable when every correctness test of the
report passed and its BD-rate against the current champion (the last adopted ledger entry) beats
the margin of fixtures/adoption.toml on the primary metric, with no clip and no secondary metric
regressing beyond its bound. With no champion yet, the passing candidate with the best BD-rate
against the rate anchor (x265) becomes the first champion: the best reference candidate.

- config.py: `load_adoption_config(path)` reads the thresholds (`AdoptionConfig`).
- rules.py: `verdict(doc, name, config=, ledger=)` judges one candidate of a report document with
  the correctness, identical-results, bootstrap and vs-champion rules; `decide_all` judges every
  candidate. Nothing is run: the numbers come from the report.
- scores.py: `fingerprint(doc, name)`: sha256 over the sorted bitstream hashes of the candidate's
  rate points. A fingerprint (or rounded scores on the same clips) equal to an earlier ledger
  entry's flags the candidate: identical results are the signature of a harness that ran the same
  code again (the seeds' fixed baseline, 22 identical "experiments").
- recording.py: `adopt(report, name, ledger=, candidates_dir=, config=)` checks that the report is
  current (the candidate's source hash on disk equals the report's) and appends an "adopted"
  entry, or a "rejected" one when the candidate passed but did not beat the champion;
  `ledger_table`; `register` adds `python -m harness adopt` and `ledger`.

BD-rates are percent; negative = fewer bits at equal quality = better.
"""

from __future__ import annotations

from harness.adoption.config import (
    DEFAULT_CONFIG,
    DEFAULT_LEDGER,
    METRIC_LABELS,
    ROOT,
    AdoptionConfig,
    AdoptionError,
    default_config_path,
    load_adoption_config,
    metric_label,
    parse_adoption_config,
)
from harness.adoption.recording import adopt, ledger_table, register
from harness.adoption.rules import Verdict, best_candidate, decide_all, verdict
from harness.adoption.scores import anchor_scores, fingerprint, report_basis

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LEDGER",
    "METRIC_LABELS",
    "ROOT",
    "AdoptionConfig",
    "AdoptionError",
    "Verdict",
    "adopt",
    "anchor_scores",
    "best_candidate",
    "decide_all",
    "default_config_path",
    "fingerprint",
    "ledger_table",
    "load_adoption_config",
    "metric_label",
    "parse_adoption_config",
    "register",
    "report_basis",
    "verdict",
]

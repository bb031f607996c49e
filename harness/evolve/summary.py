"""What a run prints: the progress line after each attempt and the summary table at the end (RUN/summary.md).

The verdict words are the ledger's (adopted / rejected), with what happened when the ledger's word
says less ("rejected (failed the suite)"), so the terminal and `python -m harness ledger` agree.
"""

from __future__ import annotations

from pathlib import Path

from harness.bdrate import describe
from harness.ledger import LedgerEntry

__all__ = ["progress_line", "summary_table"]


def _words(value: object) -> str:
    return describe(value) if isinstance(value, (int, float)) else "n/a"


_KINDS = {"failed": "failed the suite", "invalid": "no valid module"}


def verdict_words(record: dict) -> str:
    """The ledger's decision, and the attempt's outcome where it differs: "rejected (failed the suite)",
    "rejected (failed the screen)" for one the cascade's first stage stopped."""
    verdict = str(record.get("verdict"))
    decision = str(record.get("decision") or verdict)
    kind = "failed the screen" if record.get("stage") == "screen" else _KINDS.get(verdict, verdict)
    return decision if verdict == decision else f"{decision} ({kind})"


def progress_line(record: dict, iterations: int, anchor: str = "x265") -> str:
    words = verdict_words(record)
    decision, _, kind = words.partition(" ")
    head = f"attempt {record['attempt']}/{iterations} {record['candidate']}: {decision.upper()}" + (f" {kind}" if kind else "")
    parts = []
    if record.get("bd_vs_anchor") is not None or record.get("stage") == "verdict":
        parts.append(f"vs {anchor} {_words(record.get('bd_vs_anchor'))}")
    if record.get("bd_vs_champion") is not None:
        parts.append(f"vs champion {record.get('champion')} {_words(record.get('bd_vs_champion'))}")
    reason = _short(record.get("reason"), 300)
    usage = record.get("usage") or {}
    cost = record.get("cost_usd")
    tokens = f"tokens {int(usage.get('input_tokens') or 0):,} in + {int(usage.get('output_tokens') or 0):,} out" + (
        f", ${cost:.4f}" if isinstance(cost, (int, float)) else ""
    )
    times = [f"{k} {float(record[f'{k}_s']):.1f} s" for k in ("screen", "suite") if record.get(f"{k}_s") is not None]
    if times:
        tokens += "; " + ", ".join(times) + (f" on {record['eval_node']}" if record.get("eval_node") else "")
    return f"{head} — " + "; ".join(parts + [reason]) + f" [{tokens}]"


def summary_table(
    records: list[dict], stop_reason: str | None, initial: dict, anchor: str, champion: LedgerEntry | None,
    ledger: Path | None = None,
) -> str:
    head = ("#", "candidate", "verdict", f"vs {anchor}", "vs champion", "tokens", "cost", "reason")
    rows = []
    for r in records:
        cost = r.get("cost_usd")
        rows.append((
            str(r["attempt"]), str(r.get("candidate")), verdict_words(r),
            _fmt(r.get("bd_vs_anchor")), _fmt(r.get("bd_vs_champion")), f"{int(r.get('tokens') or 0):,}",
            f"${cost:.4f}" if isinstance(cost, (int, float)) else "n/a",
            _short(r.get("reason"), 90),
        ))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head) - 1)]
    lines = [f"evolution run: {len(records)} attempt(s); stopped: {stop_reason or 'not stopped'}"]
    for row in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    passed = [r for r in records if r.get("verdict") in ("adopted", "rejected") and r.get("bd_vs_anchor") is not None]
    if passed:
        best = min(passed, key=lambda r: r["bd_vs_anchor"])
        lines.append(
            f"best attempt: {best['attempt']} {best['candidate']} ({best['verdict']}): vs {anchor} "
            f"{describe(best['bd_vs_anchor'])}"
        )
    else:
        lines.append("best attempt: none passed the suite")
    trend = [f"{_fmt(initial.get('bd_vs_anchor'))} ({initial.get('name', '?')})"]
    for r in records:
        if r.get("verdict") == "adopted":
            trend.append(f"{_fmt(r.get('bd_vs_anchor'))} (attempt {r['attempt']})")
    lines.append(f"champion vs {anchor}, trend: " + " -> ".join(trend))
    if champion is not None:
        lines.append(f"champion now: {champion.candidate} (ledger seq {champion.seq})")
    if records:
        where = f" {ledger}" if ledger is not None else ""
        lines.append(
            f"written to the ledger{where}: "
            + "; ".join(f"seq {r.get('ledger_seq')} {r.get('candidate')} {r.get('decision')}" for r in records)
        )
        if any(r.get("decision") != "adopted" for r in records):
            lines.append("modules not adopted are kept in their attempt's folder (attempts/N/candidate/), "
                         "not in the candidates folder")
    adopted = sum(1 for r in records if r.get("decision") == "adopted")
    failed = sum(1 for r in records if r.get("decision") != "adopted" and r.get("verdict") == "failed")
    invalid = sum(1 for r in records if r.get("decision") != "adopted" and r.get("verdict") == "invalid")
    counts = (f"adopted {adopted}, rejected {len(records) - adopted} "
              f"(failed the suite {failed}, no valid module {invalid})")
    tin = sum(int((r.get("usage") or {}).get("input_tokens") or 0) for r in records)
    tout = sum(int((r.get("usage") or {}).get("output_tokens") or 0) for r in records)
    costs = [r.get("cost_usd") for r in records]
    priced = [c for c in costs if isinstance(c, (int, float))]
    cost_text = "n/a (no price for the model in the config)" if records and not priced else f"${sum(priced):.4f}" + (
        " (some attempts unpriced)" if len(priced) < len(costs) else ""
    )
    lines.append(
        f"{counts}; tokens {tin:,} in / {tout:,} out; cost {cost_text}"
    )
    lines.append(cascade_line(records))
    return "\n".join(lines)


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.1f} s" if values else "n/a"


def cascade_line(records: list[dict]) -> str:
    """Where attempts stopped (the stages of the attempt record) and the mean evaluation time per outcome."""
    stages: dict[str, int] = {}
    for r in records:
        stages[str(r.get("stage"))] = stages.get(str(r.get("stage")), 0) + 1
    order = ["extract", "identical", "check", "screen", "suite", "verdict"]
    where = ", ".join(f"{k} {stages[k]}" for k in [*order, *sorted(set(stages) - set(order))] if k in stages)
    screened = [float(r["screen_s"]) for r in records if r.get("stage") == "screen" and r.get("screen_s") is not None]
    full = [float(r.get("screen_s") or 0.0) + float(r["suite_s"]) for r in records if r.get("suite_s") is not None]
    nodes = sorted({str(r["eval_node"]) for r in records if r.get("eval_node")})
    return (f"stopped at: {where or 'none'}; evaluation time per attempt: stopped by the screen {_mean(screened)} "
            f"({len(screened)}), full evaluation {_mean(full)} ({len(full)})"
            + (f"; evaluated on {', '.join(nodes)}" if nodes else ""))


def _short(text: object, limit: int) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fmt(value: object) -> str:
    return f"{value:+.1f} %" if isinstance(value, (int, float)) else "n/a"

"""The leaderboard row of a reported result: the published per-length scores, and the aggregates computed here from
them with the version's rule (average, wAvg inc/dec, effective length), each checked against the published figure.
No cells, no per-task scores, no interval: a published table gives none of them."""

from __future__ import annotations

from leaderboard import metrics, published
from leaderboard.models import CiMethod, LeaderboardRow, Submission


def build(sub: Submission) -> list[LeaderboardRow]:
    """Create the submission's one row (full cache, budget 1.0); none when it has no reported result."""
    result = getattr(sub, "reported_result", None)
    if result is None:
        return []
    version = sub.version
    lengths = [int(n) for n in version.lengths]
    scores = {n: result.scores_by_length.get(str(n)) for n in lengths}
    values = [scores[n] for n in lengths]
    complete = all(v is not None for v in values)
    average = wavg_inc = wavg_dec = None
    if complete:
        average = sum(values) / len(values)  # type: ignore[arg-type]
        wavg_inc, wavg_dec = metrics.weighted_averages(values)  # type: ignore[arg-type]
    threshold = version.threshold_for(result.base_score)
    effective, decided = (metrics.effective_length_decided(scores, threshold) if threshold is not None
                          else (None, False))
    missing = [published.length_label(n) for n in lengths if scores[n] is None]
    partial = f"no published score at {', '.join(missing)}" if missing else ""
    pub = result.published or {}
    checks = [c for c in (
        published.effective_length_check(pub.get("effective_length", ""), effective, decided, lengths),
        published.score_check("average", pub.get("average", ""), average,
                              missing_note=f"computed here only over every length; {partial}"),
        published.score_check("wAvg inc", pub.get("wavg_inc", ""), wavg_inc,
                              missing_note=f"computed here only over every length; {partial}"),
        published.score_check("wAvg dec", pub.get("wavg_dec", ""), wavg_dec,
                              missing_note=f"computed here only over every length; {partial}"),
        published.score_check("threshold", pub.get("threshold", ""), threshold) if pub.get("threshold") else None,
    ) if c is not None]
    entry = sub.model
    row = LeaderboardRow.objects.create(
        submission=sub, version=version, method="full", budget=1.0, model_name=entry.display_name,
        organisation=entry.organisation, model_kind=entry.kind,
        parameters_b=float(entry.parameters_b) if entry.parameters_b is not None else None,
        claimed_context=entry.claimed_context, is_baseline=sub.is_baseline, visibility=sub.visibility,
        public_note=sub.public_note, scores_by_length={str(n): scores[n] for n in lengths},
        ci_by_length={str(n): None for n in lengths}, task_scores={}, category_scores={},
        average=average, wavg_inc=wavg_inc, wavg_dec=wavg_dec, ci_low=None, ci_high=None,
        ci_method=CiMethod.NONE, effective_length=effective if decided else None, complete=complete,
        partial_reason=partial[:300], samples=0, samples_errored=0, completed_at=sub.finished_at,
        disagrees=any(c.agreement == published.Agreement.DISAGREES for c in checks),
        reported={
            "source_url": result.source_url, "link": result.link, "notes": result.notes, "label": result.label,
            "line": result.line, "published": pub, "base_score": result.base_score, "threshold": threshold,
            "effective_decided": decided, "checks": [c.as_dict() for c in checks],
        },
    )
    return [row]

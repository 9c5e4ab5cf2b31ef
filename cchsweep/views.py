"""The CCH agreement test as DuckDB views over the `results` view (schema.VIEWS).

The same numbers as analysis/agreement.py (its module docstring states the rules):

- `cch_conditions`: one row per gap_source ('estimated' from mi_gap, 'closed_form' from
  mi_gap_truth), study, profile, settings, every axis column except seed, and mi_estimator,
  with n_seeds, gain_mean, gain_se, gap_mean, gap_se, gain_undetermined, gap_undetermined,
  undetermined (either), agrees. Only status 'ok' grid rows (not a boundary search's) with a
  finite kd_gain and gap. NULL axis
  columns group together, as wanted. Conditions judged by several estimators get a
  mi_estimator = '(consensus)' row too, whose gain is over every trial of the condition that some
  estimator's gap holds (each estimator's row counts only the trials its own gap holds).
- `cch_agreement`: one row per gap_source, mi_estimator and study, plus study = '(all)' per
  gap_source and mi_estimator, with n_conditions, n_determined, n_undetermined,
  n_gain_undetermined, n_gap_undetermined, n_agree, rate,
  wilson_lo, wilson_hi, p_value (exact two-sided binomial test against 0.5, summed from lgamma
  terms: for p = 0.5 it is min(1, 2 * P(X <= min(k, n - k)))), precision, recall and
  spearman_rho (corr() of average ranks; NULL under 3 conditions or a constant side).

- `cch_scorecard`: per mi_estimator (the '(consensus)' too), over every study with KD trials, the
  estimated gap's record as a predictor: cch_agreement's study = '(all)' row, its number of
  studies, and the best threshold on the gap: over the gain-determined conditions, the cut t
  ("KD helps iff gap > t") that classifies most of them right, as the interval of cuts
  [threshold_lo, threshold_hi) that all do equally well (the one nearest 0 among ties; NULL = no
  bound), a cut inside it, `threshold` (the midpoint; threshold_lo when there is no upper bound;
  NULL when there is no lower bound: then every cut below threshold_hi does as well, and none is
  nearer the middle), its rate `threshold_rate`, and `zero_rate`, the rate of t = 0
  on the same conditions. A threshold other than 0 "separates better" only when threshold_rate >
  zero_rate.
- `mi_calibration`: the mi_calibration study's estimates against the truth, per estimator
  settings (the run's settings less mi_estimator), estimator, quantity, pair, dim, true_mi and n:
  n_seeds, truth, mean, sd, bias (mean - truth), bias_se, rel_bias (bias / truth) and rmse. A
  point estimated again (a rerun with another estimator list) counts once, its latest estimate.

Only `results` columns are referenced (mi_calibration reads `trials` and `mi`), so the views work
for any study. The condition keys are
the registered studies' axes but the seed (schema.axis_columns), so the Store regenerates these
views with `results` whenever a writer opens the file; they hold no data.
"""

from collections.abc import Mapping

from cchsweep.rules import undetermined_sql
from cchsweep.schema import condition_axes

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975), as analysis/agreement.py


def cch_views(axes: Mapping[str, str]) -> str:
    columns = ["study", "profile", "settings", *condition_axes(axes)]
    base = ", ".join(columns)
    keys = f"{base}, mi_estimator"
    return (
        _CCH_VIEWS.format(
            base=base,
            keys=keys,
            j_base=", ".join(f"j.{c}" for c in columns),
            same_condition=" AND ".join(f"j.{c} IS NOT DISTINCT FROM g.{c}" for c in ["gap_source", *columns]),
            source_cols=f"{keys}, trial_key, status, mode, kd_gain",
            z95=Z95,
            gain_undetermined=undetermined_sql("gain_mean", "gain_se", "n_seeds"),
            gap_undetermined=undetermined_sql("gap_mean", "gap_se", "n_seeds"),
        )
        + MI_CALIBRATION_VIEW
    )


_CCH_VIEWS = """
CREATE OR REPLACE VIEW cch_conditions AS
WITH src AS (
    SELECT 'estimated' AS gap_source, {source_cols}, mi_gap AS gap FROM results
    UNION ALL
    SELECT 'closed_form' AS gap_source, {source_cols}, mi_gap_truth AS gap FROM results
), usable AS (
    SELECT * FROM src
    WHERE status = 'ok' AND mode = 'grid'
        AND gap IS NOT NULL AND isfinite(gap) AND kd_gain IS NOT NULL AND isfinite(kd_gain)
), trial_gains AS (  -- the consensus's gain: every trial of the condition that some estimator's gap holds
    SELECT gap_source, {base}, count(*) AS n_seeds, avg(kd_gain) AS gain_mean,
        stddev_samp(kd_gain) / sqrt(count(*)) AS gain_se
    FROM (SELECT DISTINCT gap_source, {base}, trial_key, kd_gain FROM usable)
    GROUP BY gap_source, {base}
), per_condition AS (
    SELECT gap_source, {keys},
        count(*) AS n_seeds,
        avg(kd_gain) AS gain_mean,
        stddev_samp(kd_gain) / sqrt(count(*)) AS gain_se,
        avg(gap) AS gap_mean,
        stddev_samp(gap) / sqrt(count(*)) AS gap_se
    FROM usable
    GROUP BY gap_source, {keys}
), sides AS (
    SELECT *, {gain_undetermined} AS gain_undetermined, {gap_undetermined} AS gap_undetermined
    FROM per_condition
), called AS (
    SELECT *, gain_undetermined OR gap_undetermined AS undetermined
    FROM sides
), joined AS (  -- several estimators on one condition: their consensus (analysis/agreement.py)
    SELECT gap_source, {base},
        count(*) FILTER (WHERE NOT gap_undetermined AND gap_mean > 0) AS pos,
        count(*) FILTER (WHERE NOT gap_undetermined AND gap_mean < 0) AS neg,
        avg(gap_mean) AS all_mean,
        avg(gap_mean) FILTER (WHERE NOT gap_undetermined) AS det_mean
    FROM called
    GROUP BY gap_source, {base}
    HAVING count(DISTINCT mi_estimator) > 1
), consensus AS (
    SELECT j.gap_source, {j_base}, '(consensus)' AS mi_estimator, g.n_seeds, g.gain_mean, g.gain_se,
        CASE WHEN (pos > 0) <> (neg > 0) THEN det_mean ELSE all_mean END AS gap_mean,
        CAST(NULL AS DOUBLE) AS gap_se,
        {gain_undetermined} AS gain_undetermined,
        NOT ((pos > 0) <> (neg > 0)) AS gap_undetermined
    FROM joined j JOIN trial_gains g ON {same_condition}
), everything AS (
    SELECT * FROM called
    UNION ALL BY NAME
    SELECT *, gain_undetermined OR gap_undetermined AS undetermined FROM consensus
)
SELECT *, CASE WHEN undetermined THEN NULL ELSE sign(gap_mean) = sign(gain_mean) END AS agrees
FROM everything;

CREATE OR REPLACE VIEW cch_agreement AS
WITH c AS (
    SELECT gap_source, mi_estimator, study AS grp, FALSE AS is_all,
        gap_mean, gain_mean, gain_undetermined, gap_undetermined, undetermined, agrees FROM cch_conditions
    UNION ALL
    SELECT gap_source, mi_estimator, '(all)' AS grp, TRUE AS is_all,
        gap_mean, gain_mean, gain_undetermined, gap_undetermined, undetermined, agrees FROM cch_conditions
), ranked AS (
    SELECT *,
        rank() OVER (PARTITION BY gap_source, mi_estimator, grp ORDER BY gap_mean)
            + (count(*) OVER (PARTITION BY gap_source, mi_estimator, grp, gap_mean) - 1) / 2.0 AS gap_rank,
        rank() OVER (PARTITION BY gap_source, mi_estimator, grp ORDER BY gain_mean)
            + (count(*) OVER (PARTITION BY gap_source, mi_estimator, grp, gain_mean) - 1) / 2.0 AS gain_rank
    FROM c
), counts AS (
    SELECT gap_source, mi_estimator, grp AS study, bool_or(is_all) AS is_all,
        count(*) AS n_conditions,
        count(*) FILTER (WHERE NOT undetermined) AS n_determined,
        count(*) FILTER (WHERE undetermined) AS n_undetermined,
        count(*) FILTER (WHERE gain_undetermined) AS n_gain_undetermined,
        count(*) FILTER (WHERE gap_undetermined) AS n_gap_undetermined,
        count(*) FILTER (WHERE agrees) AS n_agree,
        count(*) FILTER (WHERE NOT undetermined AND gap_mean > 0 AND gain_mean > 0) AS true_pos,
        count(*) FILTER (WHERE NOT undetermined AND gap_mean > 0) AS pred_pos,
        count(*) FILTER (WHERE NOT undetermined AND gain_mean > 0) AS actual_pos,
        CASE WHEN count(*) >= 3 AND count(DISTINCT gap_mean) >= 2 AND count(DISTINCT gain_mean) >= 2
             THEN corr(gap_rank, gain_rank) END AS spearman_rho
    FROM ranked
    GROUP BY gap_source, mi_estimator, grp
), rates AS (
    SELECT *,
        CASE WHEN n_determined > 0 THEN n_agree / n_determined END AS rate,
        CASE WHEN n_determined > 0 THEN 1 + {z95} * {z95} / n_determined END AS w_denom
    FROM counts
)
SELECT gap_source, mi_estimator, study, n_conditions, n_determined, n_undetermined, n_gain_undetermined,
    n_gap_undetermined, n_agree, rate,
    CASE WHEN n_determined > 0 THEN greatest(0.0, (rate + {z95} * {z95} / (2 * n_determined)) / w_denom
        - {z95} / w_denom * sqrt(rate * (1 - rate) / n_determined
                                 + {z95} * {z95} / (4 * n_determined * n_determined))) END AS wilson_lo,
    CASE WHEN n_determined > 0 THEN least(1.0, (rate + {z95} * {z95} / (2 * n_determined)) / w_denom
        + {z95} / w_denom * sqrt(rate * (1 - rate) / n_determined
                                 + {z95} * {z95} / (4 * n_determined * n_determined))) END AS wilson_hi,
    CASE WHEN n_determined > 0 THEN least(1.0, 2 * (
        SELECT sum(exp(lgamma(n_determined + 1) - lgamma(i + 1) - lgamma(n_determined - i + 1)
                       - n_determined * ln(2)))
        FROM range(0, least(n_agree, n_determined - n_agree) + 1) AS tail(i)))
    END AS p_value,
    CASE WHEN pred_pos > 0 THEN true_pos / pred_pos END AS precision,
    CASE WHEN actual_pos > 0 THEN true_pos / actual_pos END AS recall,
    spearman_rho
FROM rates
ORDER BY gap_source = 'closed_form', mi_estimator = '(consensus)', mi_estimator NULLS LAST, is_all, study;

CREATE OR REPLACE VIEW cch_scorecard AS
WITH c AS (
    SELECT mi_estimator, gap_mean AS g, gain_mean > 0 AS helped
    FROM cch_conditions
    WHERE gap_source = 'estimated' AND NOT gain_undetermined AND gap_mean IS NOT NULL
), cuts AS (  -- "helped iff gap > t" for t in [lo, hi): lo a gap value (or -inf), hi the next one
    SELECT mi_estimator, lo, lead(lo) OVER (PARTITION BY mi_estimator ORDER BY lo) AS hi
    FROM (SELECT DISTINCT mi_estimator, g AS lo FROM c UNION SELECT DISTINCT mi_estimator, -'infinity'::DOUBLE FROM c)
), scored AS (
    SELECT k.mi_estimator, k.lo, k.hi, count(*) FILTER (WHERE (c.g > k.lo) = c.helped) AS correct, count(*) AS n
    FROM cuts k JOIN c USING (mi_estimator)
    GROUP BY k.mi_estimator, k.lo, k.hi
), best AS (  -- most conditions right; among ties the interval nearest 0
    SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY mi_estimator ORDER BY correct DESC,
            CASE WHEN lo <= 0 AND (hi IS NULL OR hi > 0) THEN 0 WHEN lo > 0 THEN lo ELSE -hi END, lo) AS r
        FROM scored)
    WHERE r = 1
), zero AS (
    SELECT mi_estimator, count(*) FILTER (WHERE (g > 0) = helped) AS zero_correct FROM c GROUP BY mi_estimator
), studies AS (
    SELECT mi_estimator, count(DISTINCT study) AS n_studies
    FROM cch_conditions WHERE gap_source = 'estimated' GROUP BY mi_estimator
)
SELECT a.mi_estimator, s.n_studies, a.n_conditions, a.n_determined, a.n_undetermined, a.n_gain_undetermined,
    a.n_gap_undetermined, a.n_agree, a.rate, a.wilson_lo, a.wilson_hi, a.p_value, a.precision, a.recall,
    a.spearman_rho, b.n AS n_gain_determined,
    CASE WHEN b.lo = -'infinity'::DOUBLE THEN NULL ELSE b.lo END AS threshold_lo,
    b.hi AS threshold_hi,
    CASE WHEN b.lo = -'infinity'::DOUBLE THEN NULL WHEN b.hi IS NULL THEN b.lo ELSE (b.lo + b.hi) / 2 END
        AS threshold,
    b.correct / b.n AS threshold_rate, z.zero_correct / b.n AS zero_rate
FROM cch_agreement a
JOIN studies s USING (mi_estimator)
LEFT JOIN best b USING (mi_estimator)
LEFT JOIN zero z USING (mi_estimator)
WHERE a.gap_source = 'estimated' AND a.study = '(all)'
ORDER BY a.mi_estimator = '(consensus)', a.mi_estimator;
"""

MI_CALIBRATION_VIEW = """
CREATE OR REPLACE VIEW mi_calibration AS
WITH est AS (
    SELECT CAST(json_merge_patch(t.settings, '{"mi_estimator": null}') AS VARCHAR) AS settings,
        m.estimator, m.quantity, t.params->>'pair' AS pair, CAST(t.params->>'dim' AS INTEGER) AS dim,
        CAST(t.params->>'true_mi' AS DOUBLE) AS true_mi, CAST(t.params->>'n' AS INTEGER) AS n,
        CAST(t.params->>'seed' AS INTEGER) AS seed, m.value, m.truth,
        row_number() OVER (PARTITION BY CAST(json_merge_patch(t.settings, '{"mi_estimator": null}') AS VARCHAR),
            m.estimator, m.quantity, CAST(t.params AS VARCHAR) ORDER BY t.finished_at DESC, t.trial_key) AS latest
    FROM trials t JOIN mi m USING (trial_key)
    WHERE t.study = 'mi_calibration' AND t.status = 'ok' AND m.truth IS NOT NULL
)
SELECT settings, estimator, quantity, pair, dim, true_mi, n,
    count(*) AS n_seeds, avg(truth) AS truth, avg(value) AS mean, stddev_samp(value) AS sd,
    avg(value - truth) AS bias, stddev_samp(value) / sqrt(count(*)) AS bias_se,
    avg(value - truth) / avg(truth) AS rel_bias, sqrt(avg((value - truth) * (value - truth))) AS rmse
FROM est WHERE latest = 1
GROUP BY ALL
ORDER BY settings, estimator, pair, dim, true_mi, n;
"""

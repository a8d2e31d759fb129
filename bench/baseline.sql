-- The fastest hand-written DuckDB SQL we could write for bench/model.yml: one scan of the
-- events with filtered aggregates, active days as a bitmask; the two distinct counts in their
-- own small GROUP BY over only the rows they need (JSON read only there), exp() only on the
-- rows that use it, the free-mail list evaluated once, the champion by first(... ORDER BY)
-- in the rollup's GROUP BY; then the same decisions.
-- Placeholders ({as_of} ...) are filled in by bench_score.py.
CREATE OR REPLACE TEMP MACRO fmt(v) AS
  (floor(v * 10 + 0.5)::BIGINT // 10)::VARCHAR
  || CASE WHEN floor(v * 10 + 0.5)::BIGINT % 10 = 0 THEN ''
          ELSE '.' || (floor(v * 10 + 0.5)::BIGINT % 10)::VARCHAR END;

CREATE OR REPLACE TABLE baseline_user_scores AS
WITH recent AS (
  SELECT * FROM events WHERE "timestamp" < TIMESTAMP '{as_of}' AND user_id IS NOT NULL
),
agg AS (
  SELECT
    user_id,
    (count(*) FILTER (WHERE event = 'onboarding_a') > 0)::INT
      + (count(*) FILTER (WHERE event = 'onboarding_b') > 0)::INT AS onboarded,
    bit_count(bit_or(1::BIGINT << (({as_of_day} - epoch_us("timestamp") // 86400000000) % 63))
      FILTER (WHERE "timestamp" >= TIMESTAMP '{start30}')) AS active_days,
    count(*) FILTER (WHERE event = 'project_created') AS projects,
    sum(CASE WHEN event = 'pricing_viewed' AND "timestamp" >= TIMESTAMP '{start30}'
             THEN exp((({as_of_epoch} - epoch("timestamp")) / 86400.0) * -{pricing_rate}) END) AS pricing,
    count(*) FILTER (WHERE event = 'contact_sales' AND "timestamp" >= TIMESTAMP '{start60}') AS sales,
    count(*) FILTER (WHERE event = 'email_opened' AND "timestamp" >= TIMESTAMP '{start60}') AS opens,
    count(*) FILTER (WHERE event = 'webinar_attended') AS webinar,
    max("timestamp") AS last_seen_at
  FROM recent
  GROUP BY user_id
),
features AS (
  SELECT user_id, count(DISTINCT v) AS features FROM (
    SELECT user_id, properties ->> '$.feature' AS v FROM recent
    WHERE event = 'feature_used' AND "timestamp" >= TIMESTAMP '{start30}')
  GROUP BY user_id
),
invites AS (
  SELECT user_id, count(DISTINCT v) AS invites FROM (
    SELECT user_id, properties ->> '$.invitee' AS v FROM recent WHERE event = 'invite_sent')
  GROUP BY user_id
),
freemail AS (SELECT unnest([{freemail}]) AS domain),
base AS (
  SELECT
    u.user_id, u.account_id, u.role, u.plan, a.employees, a.industry, a.tech_stack,
    CASE WHEN strpos(u.email, '@') > 0 THEN lower(u.email)[strpos(u.email, '@') + 1:] END AS domain,
    coalesce(lower(u.email)[strpos(u.email, '@') + 1:] IN (SELECT domain FROM freemail), FALSE) AS free,
    coalesce(g.onboarded, 0) AS v_onboarded,
    coalesce(g.active_days, 0)::DOUBLE AS v_active_days,
    coalesce(f.features, 0)::DOUBLE AS v_features,
    coalesce(g.projects, 0)::DOUBLE AS v_projects,
    coalesce(i.invites, 0)::DOUBLE AS v_invites,
    CASE WHEN u.plan = 'free' THEN coalesce(g.projects, 0) / 5.0 ELSE 0.0 END AS v_limit,
    coalesce(g.pricing, 0) AS v_pricing,
    coalesce(g.sales, 0) AS v_sales,
    coalesce(({as_of_epoch} - epoch(g.last_seen_at)) / 86400.0,
             ({as_of_epoch} - epoch(u.created_at)) / 86400.0) AS v_quiet,
    coalesce(g.opens, 0)::DOUBLE AS v_opens,
    coalesce(g.webinar, 0) AS v_webinar,
    g.last_seen_at
  FROM users u
  LEFT JOIN agg g ON g.user_id = u.user_id
  LEFT JOIN features f ON f.user_id = u.user_id
  LEFT JOIN invites i ON i.user_id = u.user_id
  LEFT JOIN accounts a ON a.account_id = u.account_id
  WHERE u.user_id IS NOT NULL AND (u.created_at IS NULL OR u.created_at < TIMESTAMP '{as_of}')
),
pts AS (
  SELECT *,
    CASE WHEN employees BETWEEN 50 AND 999 THEN 15 ELSE 0 END AS p_size,
    CASE WHEN regexp_matches(role, '(?i)(vp|head|cto)') THEN 10 ELSE 0 END AS p_senior,
    CASE WHEN list_contains(tech_stack, 'snowflake') THEN 5 ELSE 0 END AS p_stack,
    CASE WHEN v_onboarded >= 2 THEN 10 ELSE 0 END AS p_onboarded,
    CASE WHEN v_active_days >= 3 THEN floor(least(1.5 * v_active_days, 20) + 0.5)::BIGINT ELSE 0 END AS p_active_days,
    CASE WHEN v_features >= 3 THEN 10 ELSE 0 END AS p_features,
    CASE WHEN v_projects >= 3 THEN 10 ELSE 0 END AS p_projects,
    CASE WHEN v_invites >= 1 THEN floor(least(5 * v_invites, 20) + 0.5)::BIGINT ELSE 0 END AS p_invites,
    CASE WHEN v_limit >= 1 THEN 10 ELSE 0 END AS p_limit,
    CASE WHEN v_pricing >= 1 THEN floor(least(4 * v_pricing, 12) + 0.5)::BIGINT ELSE 0 END AS p_pricing,
    CASE WHEN v_sales >= 1 THEN 15 ELSE 0 END AS p_sales,
    CASE WHEN v_quiet > 21 THEN -15 ELSE 0 END AS p_quiet,
    CASE WHEN v_opens >= 1 THEN floor(least(v_opens, 15) + 0.5)::BIGINT ELSE 0 END AS p_opens,
    CASE WHEN v_webinar >= 1 THEN 15 ELSE 0 END AS p_webinar,
    domain IS NOT NULL AND NOT free AS business,
    coalesce(domain <> '', FALSE) AND free AS personal
  FROM base
),
scored AS (
  SELECT *,
    p_size + p_senior + p_stack AS fit_score,
    p_onboarded + p_active_days + p_features + p_projects + p_invites + p_limit + p_pricing + p_sales + p_quiet AS usage_score,
    greatest(least(p_opens + p_webinar, 100), 0) AS mql_score,
    CASE WHEN employees BETWEEN 50 AND 999 AND industry IN ('software', 'fintech', 'media') THEN 'core'
         WHEN employees >= 1000 THEN 'large' END AS icp_profile,
    CASE WHEN personal THEN 'personal' WHEN contains(lower(role), 'student') THEN 'students' END AS exclusion,
    CASE WHEN personal THEN 'personal_email' WHEN contains(lower(role), 'student') THEN 'student' END AS exclusion_reason,
    v_onboarded >= 2 AND (v_features >= 3 OR v_projects >= 3) AS activated
  FROM pts
),
decided AS (
  SELECT *,
    greatest(least(fit_score + usage_score, 100), 0) AS score,
    exclusion IS NOT NULL AS excluded
  FROM scored
),
final AS (
  SELECT *,
    icp_profile IS NOT NULL AND NOT excluded AND activated AND score >= 60 AS is_pql,
    mql_score >= 50 AS is_mql,
    CASE WHEN score >= 80 THEN 'A' WHEN score >= 60 THEN 'B' WHEN score >= 40 THEN 'C' ELSE 'D' END AS tier,
    CASE WHEN plan = 'paid' AND v_sales < 1 THEN 'converted_without_assistance'
         WHEN v_sales >= 1 THEN 'asked_for_sales'
         WHEN v_limit >= 1 THEN 'maxed_out_free'
         ELSE 'free_user' END AS segment
  FROM decided
)
SELECT
  TIMESTAMP '{as_of}' AS as_of, '{version}' AS model_version, user_id, account_id,
  fit_score::BIGINT AS fit_score, usage_score::BIGINT AS usage_score, mql_score::BIGINT AS mql_score,
  score::BIGINT AS score, icp_profile, excluded, exclusion, exclusion_reason, activated,
  is_pql, is_mql, tier, segment,
  CASE WHEN employees >= 1000 THEN 'enterprise'
       WHEN segment = 'asked_for_sales' THEN 'sales_assist' ELSE 'self_serve' END AS motion,
  concat_ws('; ',
    CASE WHEN p_onboarded <> 0 THEN 'Onboarded (+10)' END,
    CASE WHEN p_active_days <> 0 THEN 'Active ' || fmt(v_active_days) || ' days (+' || p_active_days || ')' END,
    CASE WHEN p_features <> 0 THEN 'Used ' || fmt(v_features) || ' features (+10)' END,
    CASE WHEN p_projects <> 0 THEN 'Created ' || fmt(v_projects) || ' projects (+10)' END,
    CASE WHEN p_invites <> 0 THEN 'Invited ' || fmt(v_invites) || ' teammates (+' || p_invites || ')' END,
    CASE WHEN p_limit <> 0 THEN 'Used ' || fmt(v_limit) || 'x the quota (+10)' END,
    CASE WHEN p_pricing <> 0 THEN 'Viewed pricing (' || fmt(v_pricing) || ') (+' || p_pricing || ')' END,
    CASE WHEN p_sales <> 0 THEN 'Asked for sales (+15)' END,
    CASE WHEN p_quiet <> 0 THEN 'Quiet for ' || fmt(v_quiet) || ' days (-15)' END,
    CASE WHEN p_size <> 0 THEN 'Company of 50-999 (+15)' END,
    CASE WHEN p_senior <> 0 THEN 'Senior role (+10)' END,
    CASE WHEN p_stack <> 0 THEN 'Uses Snowflake (+5)' END
  ) AS reasons,
  concat_ws('; ',
    CASE WHEN p_opens <> 0 THEN 'Opened ' || fmt(v_opens) || ' e-mails (+' || p_opens || ')' END,
    CASE WHEN p_webinar <> 0 THEN 'Attended a webinar (+15)' END
  ) AS mql_reasons,
  (fit_score + usage_score)::BIGINT AS points, NULL::DOUBLE AS likelihood, NULL::VARCHAR AS grade,
  fit_score + usage_score + least(greatest(coalesce(epoch(last_seen_at) / 86400.0, 10957.0) * 1.3689253935660506e-05 + -0.14999315537303218, 0.0), 0.5) AS ranking,
  last_seen_at
FROM final;

CREATE OR REPLACE TABLE baseline_account_scores AS
WITH agg AS (
  SELECT account_id, count(*) AS users,
    count(*) FILTER (WHERE last_seen_at >= TIMESTAMP '{start14}') AS active_users,
    count(*) FILTER (WHERE is_pql) AS pql_users, max(score) AS best_score,
    first(user_id ORDER BY score DESC, is_pql DESC, ranking DESC, user_id) AS champion_user_id,
    first(icp_profile ORDER BY score DESC, is_pql DESC, ranking DESC, user_id) AS icp_profile,
    first(tier ORDER BY score DESC, is_pql DESC, ranking DESC, user_id) AS tier,
    first(segment ORDER BY score DESC, is_pql DESC, ranking DESC, user_id) AS segment,
    first(motion ORDER BY score DESC, is_pql DESC, ranking DESC, user_id) AS motion
  FROM baseline_user_scores WHERE account_id IS NOT NULL GROUP BY account_id
)
SELECT TIMESTAMP '{as_of}' AS as_of, '{version}' AS model_version, g.account_id, a.name, a.domain,
  g.users, g.active_users, g.pql_users, a.seats::DOUBLE AS seats,
  CASE WHEN a.seats > 0 THEN g.active_users / a.seats END AS seat_share_active,
  g.best_score AS score, g.best_score, g.champion_user_id, g.icp_profile, g.tier, g.segment, g.motion,
  g.pql_users >= 1 AS is_pqa
FROM agg g LEFT JOIN accounts a USING (account_id);

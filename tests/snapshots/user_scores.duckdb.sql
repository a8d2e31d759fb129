SELECT
  MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) AS "as_of",
  'snapshot0000' AS "model_version",
  "t18"."user__user_id" AS "user_id",
  "t18"."user__account_id" AS "account_id",
  CAST("t18"."_s11" AS BIGINT) AS "fit_score",
  "t18"."_s12" AS "usage_score",
  0 AS "mql_score",
  "t18"."_s14" AS "score",
  "t18"."_s15" AS "icp_profile",
  "t18"."_s18" AS "excluded",
  "t18"."_s16" AS "exclusion",
  "t18"."_s17" AS "exclusion_reason",
  "t18"."_s19" AS "activated",
  COALESCE((
    "t18"."_s15" IS NOT NULL
  ) AND (
    "t18"."_s15" <> ''
  ), FALSE)
  AND NOT (
    "t18"."_s18"
  )
  AND "t18"."_s19"
  AND COALESCE("t18"."_s14" >= 60, FALSE) AS "is_pql",
  COALESCE(0 >= 50, FALSE) AS "is_mql",
  CASE
    WHEN COALESCE("t18"."_s14" >= 80.0, FALSE)
    THEN 'A'
    WHEN COALESCE("t18"."_s14" >= 60.0, FALSE)
    THEN 'B'
    WHEN COALESCE("t18"."_s14" >= 40.0, FALSE)
    THEN 'C'
    WHEN COALESCE("t18"."_s14" >= 0.0, FALSE)
    THEN 'D'
    ELSE 'D'
  END AS "tier",
  CASE
    WHEN COALESCE("t18"."user__is_paid" = TRUE, FALSE)
    AND NOT (
      COALESCE("t18"."user__sales_touched" = TRUE, FALSE)
    )
    AND NOT (
      "t18"."_s5"
    )
    THEN 'converted_without_assistance'
    WHEN "t18"."_s5"
    THEN 'asked_for_sales'
    ELSE 'free_user'
  END AS "segment",
  'self_serve' AS "motion",
  COALESCE(
    CONCAT_WS(
      '; ',
      CASE
        WHEN COALESCE("t18"."_s7" <> 0, FALSE)
        THEN 'Active ' || CAST(CAST(COALESCE("t18"."signal__active", 0.0) AS BIGINT) AS TEXT) || ' days (' || CASE
          WHEN "t18"."_s7" >= 0
          THEN '+' || CAST("t18"."_s7" AS TEXT)
          ELSE CAST("t18"."_s7" AS TEXT)
        END || ')'
        ELSE CAST(NULL AS TEXT)
      END,
      CASE
        WHEN COALESCE("t18"."_s8" <> 0, FALSE)
        THEN 'features (+10)'
        ELSE CAST(NULL AS TEXT)
      END,
      CASE
        WHEN COALESCE("t18"."_s9" <> 0, FALSE)
        THEN 'pricing (+5)'
        ELSE CAST(NULL AS TEXT)
      END,
      CASE
        WHEN COALESCE("t18"."_s10" <> 0, FALSE)
        THEN 'sales (+15)'
        ELSE CAST(NULL AS TEXT)
      END,
      CASE
        WHEN COALESCE("t18"."_s6" <> 0, FALSE)
        THEN 'Senior role (+10)'
        ELSE CAST(NULL AS TEXT)
      END
    ),
    ''
  ) AS "reasons",
  '' AS "mql_reasons",
  "t18"."_s13" AS "points",
  CAST(NULL AS DOUBLE) AS "likelihood",
  CAST(NULL AS TEXT) AS "grade",
  "t18"."_s13" + CASE
    WHEN CASE
      WHEN (
        (
          COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL
      THEN (
        COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218
      ELSE LEAST(
        0.5,
        (
          COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    END IS NULL
    THEN CASE
      WHEN (
        (
          COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL
      THEN (
        COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218
      ELSE LEAST(
        0.5,
        (
          COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    END
    ELSE GREATEST(
      0,
      CASE
        WHEN (
          (
            COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        ) IS NULL
        THEN (
          COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
        ELSE LEAST(
          0.5,
          (
            COALESCE("t18"."user__seen_day", 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        )
      END
    )
  END AS "ranking",
  "t18"."last_seen_at"
FROM (
  SELECT
    "t17"."user__user_id",
    "t17"."user__email",
    "t17"."user__account_id",
    "t17"."user__created_at",
    "t17"."user__plan",
    "t17"."user__role",
    "t17"."last_seen_at",
    "t17"."account__account_id",
    "t17"."account__domain",
    "t17"."account__industry",
    "t17"."account__employees",
    "t17"."account__tech_stack",
    "t17"."account__seats",
    "t17"."account__name",
    "t17"."account__country",
    "t17"."account__plan",
    "t17"."user__email_domain",
    "t17"."user__is_business_email",
    "t17"."user__is_paid",
    "t17"."user__days_since_signup",
    "t17"."user__days_since_seen",
    "t17"."user__seen_day",
    "t17"."user__sales_touched",
    "t17"."signal__active",
    "t17"."signal__features",
    "t17"."signal__pricing",
    "t17"."signal__sales",
    "t17"."_s1",
    "t17"."_s2",
    "t17"."_s3",
    "t17"."_s4",
    "t17"."_s5",
    "t17"."_s6",
    "t17"."_s7",
    "t17"."_s8",
    "t17"."_s9",
    "t17"."_s10",
    "t17"."_s6" + 0 AS "_s11",
    "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10" AS "_s12",
    "t17"."_s6" + 0 + (
      "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
    ) AS "_s13",
    CASE
      WHEN CASE
        WHEN (
          "t17"."_s6" + 0 + (
            "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
          )
        ) IS NULL
        THEN "t17"."_s6" + 0 + (
          "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
        )
        ELSE LEAST(
          100,
          "t17"."_s6" + 0 + (
            "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
          )
        )
      END IS NULL
      THEN CASE
        WHEN (
          "t17"."_s6" + 0 + (
            "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
          )
        ) IS NULL
        THEN "t17"."_s6" + 0 + (
          "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
        )
        ELSE LEAST(
          100,
          "t17"."_s6" + 0 + (
            "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
          )
        )
      END
      ELSE GREATEST(
        0,
        CASE
          WHEN (
            "t17"."_s6" + 0 + (
              "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
            )
          ) IS NULL
          THEN "t17"."_s6" + 0 + (
            "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
          )
          ELSE LEAST(
            100,
            "t17"."_s6" + 0 + (
              "t17"."_s7" + 0 + "t17"."_s8" + "t17"."_s9" + "t17"."_s10"
            )
          )
        END
      )
    END AS "_s14",
    CASE
      WHEN COALESCE("t17"."account__employees" >= 50.0, FALSE)
      AND COALESCE("t17"."account__employees" <= 999.0, FALSE)
      AND COALESCE("t17"."user__is_business_email", FALSE)
      THEN 'fit'
      ELSE CAST(NULL AS TEXT)
    END AS "_s15",
    CASE
      WHEN COALESCE(CONTAINS(LOWER("t17"."user__role"), 'student'), FALSE)
      THEN 'students'
      ELSE CAST(NULL AS TEXT)
    END AS "_s16",
    CASE
      WHEN COALESCE(CONTAINS(LOWER("t17"."user__role"), 'student'), FALSE)
      THEN 'student'
      ELSE CAST(NULL AS TEXT)
    END AS "_s17",
    COALESCE(CONTAINS(LOWER("t17"."user__role"), 'student'), FALSE) AS "_s18",
    "t17"."_s3" AS "_s19"
  FROM (
    SELECT
      "t16"."user__user_id",
      "t16"."user__email",
      "t16"."user__account_id",
      "t16"."user__created_at",
      "t16"."user__plan",
      "t16"."user__role",
      "t16"."last_seen_at",
      "t16"."account__account_id",
      "t16"."account__domain",
      "t16"."account__industry",
      "t16"."account__employees",
      "t16"."account__tech_stack",
      "t16"."account__seats",
      "t16"."account__name",
      "t16"."account__country",
      "t16"."account__plan",
      "t16"."user__email_domain",
      "t16"."user__is_business_email",
      "t16"."user__is_paid",
      "t16"."user__days_since_signup",
      "t16"."user__days_since_seen",
      "t16"."user__seen_day",
      "t16"."user__sales_touched",
      "t16"."signal__active",
      "t16"."signal__features",
      "t16"."signal__pricing",
      "t16"."signal__sales",
      COALESCE(REGEXP_MATCHES("t16"."user__role", '(?i)vp'), FALSE) AS "_s1",
      COALESCE("t16"."signal__active" >= 3.0, FALSE) AS "_s2",
      COALESCE("t16"."signal__features" >= 3.0, FALSE) AS "_s3",
      COALESCE("t16"."signal__pricing" >= 1, FALSE) AS "_s4",
      COALESCE("t16"."signal__sales" >= 1, FALSE) AS "_s5",
      CASE
        WHEN COALESCE(REGEXP_MATCHES("t16"."user__role", '(?i)vp'), FALSE)
        THEN 10
        ELSE 0
      END AS "_s6",
      CASE
        WHEN COALESCE("t16"."signal__active" >= 3.0, FALSE)
        THEN CAST(FLOOR(
          CASE
            WHEN CASE
              WHEN (
                "t16"."signal__active" * 2.0
              ) IS NULL
              THEN "t16"."signal__active" * 2.0
              ELSE LEAST(20.0, "t16"."signal__active" * 2.0)
            END IS NULL
            THEN CASE
              WHEN (
                "t16"."signal__active" * 2.0
              ) IS NULL
              THEN "t16"."signal__active" * 2.0
              ELSE LEAST(20.0, "t16"."signal__active" * 2.0)
            END
            ELSE GREATEST(
              -20.0,
              CASE
                WHEN (
                  "t16"."signal__active" * 2.0
                ) IS NULL
                THEN "t16"."signal__active" * 2.0
                ELSE LEAST(20.0, "t16"."signal__active" * 2.0)
              END
            )
          END + 0.5
        ) AS BIGINT)
        ELSE CAST(0 AS BIGINT)
      END AS "_s7",
      CASE WHEN COALESCE("t16"."signal__features" >= 3.0, FALSE) THEN 10 ELSE 0 END AS "_s8",
      CASE WHEN COALESCE("t16"."signal__pricing" >= 1, FALSE) THEN 5 ELSE 0 END AS "_s9",
      CASE WHEN COALESCE("t16"."signal__sales" >= 1, FALSE) THEN 15 ELSE 0 END AS "_s10"
    FROM (
      SELECT
        "t15"."user__user_id",
        "t15"."user__email",
        "t15"."user__account_id",
        "t15"."user__created_at",
        "t15"."user__plan",
        "t15"."user__role",
        "t15"."last_seen_at",
        "t15"."account__account_id",
        "t15"."account__domain",
        "t15"."account__industry",
        "t15"."account__employees",
        "t15"."account__tech_stack",
        "t15"."account__seats",
        "t15"."account__name",
        "t15"."account__country",
        "t15"."account__plan",
        "t15"."user__email_domain",
        "t15"."user__is_business_email",
        "t15"."user__is_paid",
        "t15"."user__days_since_signup",
        "t15"."user__days_since_seen",
        "t15"."user__seen_day",
        "t15"."user__sales_touched",
        CAST(BIT_COUNT(COALESCE("t15"."a__active_w0", 0)) AS DOUBLE) AS "signal__active",
        CAST(COALESCE("t15"."a__features", 0) AS DOUBLE) AS "signal__features",
        COALESCE("t15"."a__pricing", 0) AS "signal__pricing",
        CAST(COALESCE("t15"."a__sales", 0) AS DOUBLE) AS "signal__sales"
      FROM (
        SELECT
          "t14"."user__user_id",
          "t14"."user__email",
          "t14"."user__account_id",
          "t14"."user__created_at",
          "t14"."user__plan",
          "t14"."user__role",
          "t14"."last_seen_at",
          "t14"."a__active_w0",
          "t14"."a__features",
          "t14"."a__pricing",
          "t14"."a__sales",
          "t14"."account__account_id",
          "t14"."account__domain",
          "t14"."account__industry",
          "t14"."account__employees",
          "t14"."account__tech_stack",
          "t14"."account__seats",
          "t14"."account__name",
          "t14"."account__country",
          "t14"."account__plan",
          "t14"."user__email_domain",
          COALESCE(
            (
              "t14"."user__email_domain" IS NOT NULL
            )
            AND NOT (
              "t14"."user__email_domain" IN (
                '126.com',
                '139.com',
                '163.com',
                'abv.bg',
                'aim.com',
                'alice.it',
                'aol.com',
                'att.net',
                'bellsouth.net',
                'bigpond.com',
                'bk.ru',
                'bluewin.ch',
                'bol.com.br',
                'btinternet.com',
                'centrum.cz',
                'charter.net',
                'chello.nl',
                'comcast.net',
                'cox.net',
                'daum.net',
                'earthlink.net',
                'email.com',
                'fastmail.com',
                'fastmail.fm',
                'free.fr',
                'freenet.de',
                'gmail.com',
                'gmx.at',
                'gmx.ch',
                'gmx.com',
                'gmx.de',
                'gmx.net',
                'googlemail.com',
                'hanmail.net',
                'hetnet.nl',
                'hey.com',
                'hotmail.co.uk',
                'hotmail.com',
                'hotmail.de',
                'hotmail.es',
                'hotmail.fr',
                'hotmail.it',
                'hushmail.com',
                'icloud.com',
                'inbox.com',
                'inbox.ru',
                'interia.pl',
                'juno.com',
                'kpnmail.nl',
                'laposte.net',
                'libero.it',
                'list.ru',
                'live.ca',
                'live.co.uk',
                'live.com',
                'live.com.au',
                'live.de',
                'live.fr',
                'live.it',
                'live.nl',
                'mac.com',
                'mail.com',
                'mail.ru',
                'me.com',
                'msn.com',
                'naver.com',
                'netzero.net',
                'o2.pl',
                'onet.pl',
                'optonline.net',
                'optusnet.com.au',
                'orange.fr',
                'outlook.com',
                'outlook.de',
                'outlook.es',
                'outlook.fr',
                'pm.me',
                'posteo.de',
                'proton.me',
                'protonmail.ch',
                'protonmail.com',
                'qq.com',
                'rambler.ru',
                'rediffmail.com',
                'rocketmail.com',
                'rogers.com',
                'sbcglobal.net',
                'seznam.cz',
                'sfr.fr',
                'shaw.ca',
                'sina.com',
                'sky.com',
                'skynet.be',
                'sohu.com',
                'sympatico.ca',
                't-online.de',
                'telenet.be',
                'telus.net',
                'terra.com.br',
                'tiscali.it',
                'tuta.io',
                'tutanota.com',
                'tutanota.de',
                'ukr.net',
                'uol.com.br',
                'verizon.net',
                'videotron.ca',
                'virgilio.it',
                'virginmedia.com',
                'wanadoo.fr',
                'web.de',
                'wp.pl',
                'xtra.co.nz',
                'yahoo.ca',
                'yahoo.co.in',
                'yahoo.co.jp',
                'yahoo.co.uk',
                'yahoo.com',
                'yahoo.com.au',
                'yahoo.com.br',
                'yahoo.de',
                'yahoo.es',
                'yahoo.fr',
                'yahoo.in',
                'yahoo.it',
                'yandex.com',
                'yandex.ru',
                'yeah.net',
                'ymail.com',
                'ziggo.nl',
                'zoho.com',
                'zohomail.com'
              )
            ),
            FALSE
          ) AS "user__is_business_email",
          COALESCE(COALESCE("t14"."user__plan" IN ('paid'), FALSE), FALSE) AS "user__is_paid",
          (
            CAST(EPOCH(CAST(MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) AS TIMESTAMP)) AS DOUBLE) - CAST(EPOCH(CAST("t14"."user__created_at" AS TIMESTAMP)) AS DOUBLE)
          ) / 86400.0 AS "user__days_since_signup",
          (
            CAST(EPOCH(CAST(MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) AS TIMESTAMP)) AS DOUBLE) - CAST(EPOCH(CAST("t14"."last_seen_at" AS TIMESTAMP)) AS DOUBLE)
          ) / 86400.0 AS "user__days_since_seen",
          CAST(EPOCH(CAST("t14"."last_seen_at" AS TIMESTAMP)) AS DOUBLE) / 86400.0 AS "user__seen_day",
          FALSE AS "user__sales_touched"
        FROM (
          SELECT
            "t13"."user__user_id",
            "t13"."user__email",
            "t13"."user__account_id",
            "t13"."user__created_at",
            "t13"."user__plan",
            "t13"."user__role",
            "t13"."last_seen_at",
            "t13"."a__active_w0",
            "t13"."a__features",
            "t13"."a__pricing",
            "t13"."a__sales",
            "t13"."account__account_id",
            "t13"."account__domain",
            "t13"."account__industry",
            "t13"."account__employees",
            "t13"."account__tech_stack",
            "t13"."account__seats",
            "t13"."account__name",
            "t13"."account__country",
            "t13"."account__plan",
            CASE
              WHEN (
                STRPOS("t13"."user__email", '@') - 1
              ) >= 0
              THEN SUBSTRING(
                LOWER("t13"."user__email"),
                CASE
                  WHEN (
                    (
                      STRPOS("t13"."user__email", '@') - 1
                    ) + 1 + 1
                  ) >= 1
                  THEN (
                    STRPOS("t13"."user__email", '@') - 1
                  ) + 1 + 1
                  ELSE (
                    STRPOS("t13"."user__email", '@') - 1
                  ) + 1 + 1 + LENGTH(LOWER("t13"."user__email"))
                END
              )
              ELSE CAST(NULL AS TEXT)
            END AS "user__email_domain"
          FROM (
            SELECT
              "t12"."user__user_id",
              "t12"."user__email",
              "t12"."user__account_id",
              "t12"."user__created_at",
              "t12"."user__plan",
              "t12"."user__role",
              "t12"."last_seen_at",
              "t12"."a__active_w0",
              "t12"."a__features",
              "t12"."a__pricing",
              "t12"."a__sales",
              "t5"."account__account_id",
              "t5"."account__domain",
              "t5"."account__industry",
              "t5"."account__employees",
              "t5"."account__tech_stack",
              "t5"."account__seats",
              "t5"."account__name",
              "t5"."account__country",
              "t5"."account__plan"
            FROM (
              SELECT
                "t10".*
                EXCLUDE ("user_id")
              FROM (
                SELECT
                  "t7"."user__user_id",
                  "t7"."user__email",
                  "t7"."user__account_id",
                  "t7"."user__created_at",
                  "t7"."user__plan",
                  "t7"."user__role",
                  "t9"."user_id",
                  "t9"."last_seen_at",
                  "t9"."a__active_w0",
                  "t9"."a__features",
                  "t9"."a__pricing",
                  "t9"."a__sales"
                FROM (
                  SELECT
                    NULLIF("t1"."user_id", '') AS "user__user_id",
                    "t1"."email" AS "user__email",
                    NULLIF("t1"."account_id", '') AS "user__account_id",
                    "t1"."created_at" AS "user__created_at",
                    "t1"."plan" AS "user__plan",
                    "t1"."role" AS "user__role"
                  FROM "users" AS "t1"
                  WHERE
                    NULLIF("t1"."user_id", '') IS NOT NULL
                    AND (
                      (
                        "t1"."created_at" IS NULL
                      )
                      OR (
                        "t1"."created_at" < MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0)
                      )
                    )
                ) AS "t7"
                LEFT OUTER JOIN (
                  SELECT
                    "t4"."user_id",
                    MAX("t4"."timestamp") AS "last_seen_at",
                    BIT_OR(
                      1 << (
                        (
                          CAST(FLOOR(
                            (
                              CAST(EPOCH(CAST(MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) AS TIMESTAMP)) AS DOUBLE)
                            ) / (
                              86400
                            )
                          ) AS BIGINT) - CAST(FLOOR((
                            CAST(EPOCH(CAST("t4"."timestamp" AS TIMESTAMP)) AS DOUBLE)
                          ) / (
                            86400
                          )) AS BIGINT)
                        ) % 63
                      )
                    ) FILTER(WHERE
                      "t4"."timestamp" >= (
                        MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) + INTERVAL '-30' DAY
                      )) AS "a__active_w0",
                    COUNT(
                      DISTINCT CASE
                        WHEN "t4"."event" = 'feature_used'
                        THEN "t4"."properties" ->> '/feature'
                        ELSE CAST(NULL AS TEXT)
                      END
                    ) AS "a__features",
                    SUM(
                      CASE
                        WHEN "t4"."event" = 'pricing_viewed'
                        THEN EXP(
                          (
                            (
                              CAST(EPOCH(CAST(MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0) AS TIMESTAMP)) AS DOUBLE) - CAST(EPOCH(CAST("t4"."timestamp" AS TIMESTAMP)) AS DOUBLE)
                            ) / 86400.0
                          ) * -0.09902102579427789
                        )
                        ELSE CAST(NULL AS DOUBLE)
                      END
                    ) AS "a__pricing",
                    COUNT(*) FILTER(WHERE
                      "t4"."event" = 'demo_requested') AS "a__sales"
                  FROM (
                    SELECT
                      "t2"."message_id",
                      "t2"."user_id",
                      "t2"."anonymous_id",
                      "t2"."account_id",
                      "t2"."event",
                      "t2"."timestamp",
                      CAST("t2"."properties" AS JSON) AS "properties"
                    FROM "events" AS "t2"
                    WHERE
                      "t2"."timestamp" < MAKE_TIMESTAMP(2026, 10, 1, 0, 0, 0.0)
                      AND "t2"."user_id" IS NOT NULL
                  ) AS "t4"
                  GROUP BY
                    1
                ) AS "t9"
                  ON "t7"."user__user_id" = "t9"."user_id"
              ) AS "t10"
            ) AS "t12"
            LEFT OUTER JOIN (
              SELECT
                NULLIF("t0"."account_id", '') AS "account__account_id",
                "t0"."domain" AS "account__domain",
                "t0"."industry" AS "account__industry",
                "t0"."employees" AS "account__employees",
                "t0"."tech_stack" AS "account__tech_stack",
                "t0"."seats" AS "account__seats",
                CAST(NULL AS TEXT) AS "account__name",
                CAST(NULL AS TEXT) AS "account__country",
                CAST(NULL AS TEXT) AS "account__plan"
              FROM "accounts" AS "t0"
            ) AS "t5"
              ON "t12"."user__account_id" = "t5"."account__account_id"
          ) AS "t13"
        ) AS "t14"
      ) AS "t15"
    ) AS "t16"
  ) AS "t17"
) AS "t18"

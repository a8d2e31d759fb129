SELECT
  TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0) AS "as_of",
  'snapshot0000' AS "model_version",
  "t16"."user__user_id" AS "user_id",
  "t16"."user__account_id" AS "account_id",
  CAST("t16"."_s11" AS BIGINT) AS "fit_score",
  "t16"."_s12" AS "usage_score",
  0 AS "mql_score",
  "t16"."_s14" AS "score",
  "t16"."_s15" AS "icp_profile",
  "t16"."_s18" AS "excluded",
  "t16"."_s16" AS "exclusion",
  "t16"."_s17" AS "exclusion_reason",
  "t16"."_s19" AS "activated",
  COALESCE((
    "t16"."_s15" IS NOT NULL
  ) AND (
    "t16"."_s15" <> ''
  ), FALSE)
  AND NOT (
    "t16"."_s18"
  )
  AND "t16"."_s19"
  AND COALESCE("t16"."_s14" >= 60, FALSE) AS "is_pql",
  COALESCE(0 >= 50, FALSE) AS "is_mql",
  CASE
    WHEN COALESCE("t16"."_s14" >= 80.0, FALSE)
    THEN 'A'
    WHEN COALESCE("t16"."_s14" >= 60.0, FALSE)
    THEN 'B'
    WHEN COALESCE("t16"."_s14" >= 40.0, FALSE)
    THEN 'C'
    WHEN COALESCE("t16"."_s14" >= 0.0, FALSE)
    THEN 'D'
    ELSE 'D'
  END AS "tier",
  CASE
    WHEN COALESCE("t16"."user__is_paid" = TRUE, FALSE)
    AND NOT (
      COALESCE("t16"."user__sales_touched" = TRUE, FALSE)
    )
    AND NOT (
      "t16"."_s5"
    )
    THEN 'converted_without_assistance'
    WHEN "t16"."_s5"
    THEN 'asked_for_sales'
    ELSE 'free_user'
  END AS "segment",
  'self_serve' AS "motion",
  COALESCE(
    CONCAT_WS(
      '; ',
      IFF(
        COALESCE("t16"."_s7" <> 0, FALSE),
        CONCAT(
          CONCAT(
            CONCAT(
              CONCAT('Active ', CAST(CAST(COALESCE("t16"."signal__active", 0.0) AS BIGINT) AS VARCHAR)),
              ' days ('
            ),
            IFF(
              "t16"."_s7" >= 0,
              CONCAT('+', CAST("t16"."_s7" AS VARCHAR)),
              CAST("t16"."_s7" AS VARCHAR)
            )
          ),
          ')'
        ),
        CAST(NULL AS VARCHAR)
      ),
      IFF(COALESCE("t16"."_s8" <> 0, FALSE), 'features (+10)', CAST(NULL AS VARCHAR)),
      IFF(COALESCE("t16"."_s9" <> 0, FALSE), 'pricing (+5)', CAST(NULL AS VARCHAR)),
      IFF(COALESCE("t16"."_s10" <> 0, FALSE), 'sales (+15)', CAST(NULL AS VARCHAR)),
      IFF(COALESCE("t16"."_s6" <> 0, FALSE), 'Senior role (+10)', CAST(NULL AS VARCHAR))
    ),
    ''
  ) AS "reasons",
  '' AS "mql_reasons",
  "t16"."_s13" AS "points",
  CAST(NULL AS DOUBLE) AS "likelihood",
  CAST(NULL AS VARCHAR) AS "grade",
  "t16"."_s13" + IFF(
    IFF(
      (
        (
          COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL,
      (
        COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218,
      LEAST(
        0.5,
        (
          COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    ) IS NULL,
    IFF(
      (
        (
          COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL,
      (
        COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218,
      LEAST(
        0.5,
        (
          COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    ),
    GREATEST(
      0,
      IFF(
        (
          (
            COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        ) IS NULL,
        (
          COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218,
        LEAST(
          0.5,
          (
            COALESCE("t16"."user__seen_day", 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        )
      )
    )
  ) AS "ranking",
  "t16"."last_seen_at"
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
    "t15"."signal__active",
    "t15"."signal__features",
    "t15"."signal__pricing",
    "t15"."signal__sales",
    "t15"."_s1",
    "t15"."_s2",
    "t15"."_s3",
    "t15"."_s4",
    "t15"."_s5",
    "t15"."_s6",
    "t15"."_s7",
    "t15"."_s8",
    "t15"."_s9",
    "t15"."_s10",
    "t15"."_s6" + 0 AS "_s11",
    "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10" AS "_s12",
    "t15"."_s6" + 0 + (
      "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
    ) AS "_s13",
    IFF(
      IFF(
        (
          "t15"."_s6" + 0 + (
            "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
          )
        ) IS NULL,
        "t15"."_s6" + 0 + (
          "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
        ),
        LEAST(
          100,
          "t15"."_s6" + 0 + (
            "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
          )
        )
      ) IS NULL,
      IFF(
        (
          "t15"."_s6" + 0 + (
            "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
          )
        ) IS NULL,
        "t15"."_s6" + 0 + (
          "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
        ),
        LEAST(
          100,
          "t15"."_s6" + 0 + (
            "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
          )
        )
      ),
      GREATEST(
        0,
        IFF(
          (
            "t15"."_s6" + 0 + (
              "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
            )
          ) IS NULL,
          "t15"."_s6" + 0 + (
            "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
          ),
          LEAST(
            100,
            "t15"."_s6" + 0 + (
              "t15"."_s7" + 0 + "t15"."_s8" + "t15"."_s9" + "t15"."_s10"
            )
          )
        )
      )
    ) AS "_s14",
    CASE
      WHEN COALESCE("t15"."account__employees" >= 50.0, FALSE)
      AND COALESCE("t15"."account__employees" <= 999.0, FALSE)
      AND COALESCE("t15"."user__is_business_email", FALSE)
      THEN 'fit'
      ELSE CAST(NULL AS VARCHAR)
    END AS "_s15",
    CASE
      WHEN COALESCE(CONTAINS(LOWER("t15"."user__role"), 'student'), FALSE)
      THEN 'students'
      ELSE CAST(NULL AS VARCHAR)
    END AS "_s16",
    CASE
      WHEN COALESCE(CONTAINS(LOWER("t15"."user__role"), 'student'), FALSE)
      THEN 'student'
      ELSE CAST(NULL AS VARCHAR)
    END AS "_s17",
    COALESCE(CONTAINS(LOWER("t15"."user__role"), 'student'), FALSE) AS "_s18",
    "t15"."_s3" AS "_s19"
  FROM (
    SELECT
      "t14"."user__user_id",
      "t14"."user__email",
      "t14"."user__account_id",
      "t14"."user__created_at",
      "t14"."user__plan",
      "t14"."user__role",
      "t14"."last_seen_at",
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
        CAST(DATE_PART('epoch', TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)) AS DOUBLE) - CAST(DATE_PART('epoch', "t14"."user__created_at") AS DOUBLE)
      ) / 86400.0 AS "user__days_since_signup",
      (
        CAST(DATE_PART('epoch', TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)) AS DOUBLE) - CAST(DATE_PART('epoch', "t14"."last_seen_at") AS DOUBLE)
      ) / 86400.0 AS "user__days_since_seen",
      CAST(DATE_PART('epoch', "t14"."last_seen_at") AS DOUBLE) / 86400.0 AS "user__seen_day",
      FALSE AS "user__sales_touched",
      CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) AS "signal__active",
      CAST(COALESCE("t14"."a__features", 0) AS DOUBLE) AS "signal__features",
      COALESCE("t14"."a__pricing", 0) AS "signal__pricing",
      CAST(COALESCE("t14"."a__sales", 0) AS DOUBLE) AS "signal__sales",
      COALESCE(REGEXP_LIKE("t14"."user__role", CONCAT('.*', '(?i)vp', '.*'), 'cs'), FALSE) AS "_s1",
      COALESCE(CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) >= 3.0, FALSE) AS "_s2",
      COALESCE(CAST(COALESCE("t14"."a__features", 0) AS DOUBLE) >= 3.0, FALSE) AS "_s3",
      COALESCE(COALESCE("t14"."a__pricing", 0) >= 1, FALSE) AS "_s4",
      COALESCE(CAST(COALESCE("t14"."a__sales", 0) AS DOUBLE) >= 1, FALSE) AS "_s5",
      CASE
        WHEN COALESCE(REGEXP_LIKE("t14"."user__role", CONCAT('.*', '(?i)vp', '.*'), 'cs'), FALSE)
        THEN 10
        ELSE 0
      END AS "_s6",
      CASE
        WHEN COALESCE(CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) >= 3.0, FALSE)
        THEN CAST(FLOOR(
          IFF(
            IFF(
              (
                CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0
              ) IS NULL,
              CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0,
              LEAST(20.0, CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0)
            ) IS NULL,
            IFF(
              (
                CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0
              ) IS NULL,
              CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0,
              LEAST(20.0, CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0)
            ),
            GREATEST(
              -20.0,
              IFF(
                (
                  CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0
                ) IS NULL,
                CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0,
                LEAST(20.0, CAST(COALESCE("t14"."a__active", 0) AS DOUBLE) * 2.0)
              )
            )
          ) + 0.5
        ) AS BIGINT)
        ELSE CAST(0 AS BIGINT)
      END AS "_s7",
      CASE
        WHEN COALESCE(CAST(COALESCE("t14"."a__features", 0) AS DOUBLE) >= 3.0, FALSE)
        THEN 10
        ELSE 0
      END AS "_s8",
      CASE WHEN COALESCE(COALESCE("t14"."a__pricing", 0) >= 1, FALSE) THEN 5 ELSE 0 END AS "_s9",
      CASE
        WHEN COALESCE(CAST(COALESCE("t14"."a__sales", 0) AS DOUBLE) >= 1, FALSE)
        THEN 15
        ELSE 0
      END AS "_s10"
    FROM (
      SELECT
        "t13"."user__user_id",
        "t13"."user__email",
        "t13"."user__account_id",
        "t13"."user__created_at",
        "t13"."user__plan",
        "t13"."user__role",
        "t13"."last_seen_at",
        "t13"."a__active",
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
        IFF(
          (
            POSITION('@', "t13"."user__email") - 1
          ) >= 0,
          SUBSTRING(
            LOWER("t13"."user__email"),
            IFF(
              (
                (
                  POSITION('@', "t13"."user__email") - 1
                ) + 1 + 1
              ) >= 1,
              (
                POSITION('@', "t13"."user__email") - 1
              ) + 1 + 1,
              (
                POSITION('@', "t13"."user__email") - 1
              ) + 1 + 1 + LENGTH(LOWER("t13"."user__email"))
            )
          ),
          CAST(NULL AS VARCHAR)
        ) AS "user__email_domain"
      FROM (
        SELECT
          "t12"."user__user_id",
          "t12"."user__email",
          "t12"."user__account_id",
          "t12"."user__created_at",
          "t12"."user__plan",
          "t12"."user__role",
          "t12"."last_seen_at",
          "t12"."a__active",
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
              "t9"."a__active",
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
                    "t1"."created_at" < TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)
                  )
                )
            ) AS "t7"
            LEFT OUTER JOIN (
              SELECT
                "t4"."user_id",
                MAX("t4"."timestamp") AS "last_seen_at",
                COUNT(
                  DISTINCT IFF(
                    "t4"."timestamp" >= DATEADD(DAY, '-30', TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)),
                    TO_DATE("t4"."timestamp"),
                    NULL
                  )
                ) AS "a__active",
                COUNT(
                  DISTINCT IFF(
                    "t4"."event" = 'feature_used',
                    COALESCE(
                      AS_VARCHAR(GET("t4"."properties", 'feature')),
                      CAST(GET("t4"."properties", 'feature') AS VARCHAR)
                    ),
                    CAST(NULL AS VARCHAR)
                  )
                ) AS "a__features",
                SUM(
                  IFF(
                    "t4"."event" = 'pricing_viewed',
                    EXP(
                      (
                        (
                          CAST(DATE_PART('epoch', TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)) AS DOUBLE) - CAST(DATE_PART('epoch', "t4"."timestamp") AS DOUBLE)
                        ) / 86400.0
                      ) * -0.09902102579427789
                    ),
                    CAST(NULL AS DOUBLE)
                  )
                ) AS "a__pricing",
                COUNT_IF("t4"."event" = 'demo_requested') AS "a__sales"
              FROM (
                SELECT
                  "t2"."message_id",
                  "t2"."user_id",
                  "t2"."anonymous_id",
                  "t2"."account_id",
                  "t2"."event",
                  "t2"."timestamp",
                  CAST("t2"."properties" AS VARIANT) AS "properties"
                FROM "events" AS "t2"
                WHERE
                  "t2"."timestamp" < TIMESTAMP_FROM_PARTS(2026, 10, 1, 0, 0, 0, 0)
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
            CAST(NULL AS VARCHAR) AS "account__name",
            CAST(NULL AS VARCHAR) AS "account__country",
            CAST(NULL AS VARCHAR) AS "account__plan"
          FROM "accounts" AS "t0"
        ) AS "t5"
          ON "t12"."user__account_id" = "t5"."account__account_id"
      ) AS "t13"
    ) AS "t14"
  ) AS "t15"
) AS "t16"

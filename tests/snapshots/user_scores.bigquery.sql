SELECT
  DATETIME('2026-10-01T00:00:00') AS `as_of`,
  'snapshot0000' AS `model_version`,
  `t16`.`user__user_id` AS `user_id`,
  `t16`.`user__account_id` AS `account_id`,
  CAST(`t16`.`_s11` AS INT64) AS `fit_score`,
  `t16`.`_s12` AS `usage_score`,
  0 AS `mql_score`,
  `t16`.`_s14` AS `score`,
  `t16`.`_s15` AS `icp_profile`,
  `t16`.`_s18` AS `excluded`,
  `t16`.`_s16` AS `exclusion`,
  `t16`.`_s17` AS `exclusion_reason`,
  `t16`.`_s19` AS `activated`,
  COALESCE((
    `t16`.`_s15` IS NOT NULL
  ) AND (
    `t16`.`_s15` <> ''
  ), FALSE)
  AND NOT (
    `t16`.`_s18`
  )
  AND `t16`.`_s19`
  AND COALESCE(`t16`.`_s14` >= 60, FALSE) AS `is_pql`,
  COALESCE(0 >= 50, FALSE) AS `is_mql`,
  CASE
    WHEN COALESCE(`t16`.`_s14` >= 80.0, FALSE)
    THEN 'A'
    WHEN COALESCE(`t16`.`_s14` >= 60.0, FALSE)
    THEN 'B'
    WHEN COALESCE(`t16`.`_s14` >= 40.0, FALSE)
    THEN 'C'
    WHEN COALESCE(`t16`.`_s14` >= 0.0, FALSE)
    THEN 'D'
    ELSE 'D'
  END AS `tier`,
  CASE
    WHEN COALESCE(`t16`.`user__is_paid` = TRUE, FALSE)
    AND NOT (
      COALESCE(`t16`.`user__sales_touched` = TRUE, FALSE)
    )
    AND NOT (
      `t16`.`_s5`
    )
    THEN 'converted_without_assistance'
    WHEN `t16`.`_s5`
    THEN 'asked_for_sales'
    ELSE 'free_user'
  END AS `segment`,
  'self_serve' AS `motion`,
  COALESCE(
    ARRAY_TO_STRING(
      [
        IF(
          COALESCE(`t16`.`_s7` <> 0, FALSE),
          CONCAT(
            CONCAT(
              CONCAT(
                CONCAT(
                  'Active ',
                  CAST(CAST(trunc(COALESCE(`t16`.`signal__active`, 0.0)) AS INT64) AS STRING)
                ),
                ' days ('
              ),
              IF(
                `t16`.`_s7` >= 0,
                CONCAT('+', CAST(`t16`.`_s7` AS STRING)),
                CAST(`t16`.`_s7` AS STRING)
              )
            ),
            ')'
          ),
          CAST(NULL AS STRING)
        ),
        IF(COALESCE(`t16`.`_s8` <> 0, FALSE), 'features (+10)', CAST(NULL AS STRING)),
        IF(COALESCE(`t16`.`_s9` <> 0, FALSE), 'pricing (+5)', CAST(NULL AS STRING)),
        IF(COALESCE(`t16`.`_s10` <> 0, FALSE), 'sales (+15)', CAST(NULL AS STRING)),
        IF(COALESCE(`t16`.`_s6` <> 0, FALSE), 'Senior role (+10)', CAST(NULL AS STRING))
      ],
      '; '
    ),
    ''
  ) AS `reasons`,
  '' AS `mql_reasons`,
  `t16`.`_s13` AS `points`,
  CAST(NULL AS FLOAT64) AS `likelihood`,
  CAST(NULL AS STRING) AS `grade`,
  `t16`.`_s13` + IF(
    IF(
      (
        (
          COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL,
      (
        COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218,
      LEAST(
        0.5,
        (
          COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    ) IS NULL,
    IF(
      (
        (
          COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      ) IS NULL,
      (
        COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
      ) + -0.14999315537303218,
      LEAST(
        0.5,
        (
          COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218
      )
    ),
    GREATEST(
      0,
      IF(
        (
          (
            COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        ) IS NULL,
        (
          COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
        ) + -0.14999315537303218,
        LEAST(
          0.5,
          (
            COALESCE(`t16`.`user__seen_day`, 10957.0) * 1.3689253935660506e-05
          ) + -0.14999315537303218
        )
      )
    )
  ) AS `ranking`,
  `t16`.`last_seen_at`
FROM (
  SELECT
    `t15`.`user__user_id`,
    `t15`.`user__email`,
    `t15`.`user__account_id`,
    `t15`.`user__created_at`,
    `t15`.`user__plan`,
    `t15`.`user__role`,
    `t15`.`last_seen_at`,
    `t15`.`account__account_id`,
    `t15`.`account__domain`,
    `t15`.`account__industry`,
    `t15`.`account__employees`,
    `t15`.`account__tech_stack`,
    `t15`.`account__seats`,
    `t15`.`account__name`,
    `t15`.`account__country`,
    `t15`.`account__plan`,
    `t15`.`user__email_domain`,
    `t15`.`user__is_business_email`,
    `t15`.`user__is_paid`,
    `t15`.`user__days_since_signup`,
    `t15`.`user__days_since_seen`,
    `t15`.`user__seen_day`,
    `t15`.`user__sales_touched`,
    `t15`.`signal__active`,
    `t15`.`signal__features`,
    `t15`.`signal__pricing`,
    `t15`.`signal__sales`,
    `t15`.`_s1`,
    `t15`.`_s2`,
    `t15`.`_s3`,
    `t15`.`_s4`,
    `t15`.`_s5`,
    `t15`.`_s6`,
    `t15`.`_s7`,
    `t15`.`_s8`,
    `t15`.`_s9`,
    `t15`.`_s10`,
    `t15`.`_s6` + 0 AS `_s11`,
    `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10` AS `_s12`,
    `t15`.`_s6` + 0 + (
      `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
    ) AS `_s13`,
    IF(
      IF(
        (
          `t15`.`_s6` + 0 + (
            `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
          )
        ) IS NULL,
        `t15`.`_s6` + 0 + (
          `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
        ),
        LEAST(
          100,
          `t15`.`_s6` + 0 + (
            `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
          )
        )
      ) IS NULL,
      IF(
        (
          `t15`.`_s6` + 0 + (
            `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
          )
        ) IS NULL,
        `t15`.`_s6` + 0 + (
          `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
        ),
        LEAST(
          100,
          `t15`.`_s6` + 0 + (
            `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
          )
        )
      ),
      GREATEST(
        0,
        IF(
          (
            `t15`.`_s6` + 0 + (
              `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
            )
          ) IS NULL,
          `t15`.`_s6` + 0 + (
            `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
          ),
          LEAST(
            100,
            `t15`.`_s6` + 0 + (
              `t15`.`_s7` + 0 + `t15`.`_s8` + `t15`.`_s9` + `t15`.`_s10`
            )
          )
        )
      )
    ) AS `_s14`,
    CASE
      WHEN COALESCE(`t15`.`account__employees` >= 50.0, FALSE)
      AND COALESCE(`t15`.`account__employees` <= 999.0, FALSE)
      AND COALESCE(`t15`.`user__is_business_email`, FALSE)
      THEN 'fit'
      ELSE CAST(NULL AS STRING)
    END AS `_s15`,
    CASE
      WHEN COALESCE(INSTR(LOWER(`t15`.`user__role`), 'student') > 0, FALSE)
      THEN 'students'
      ELSE CAST(NULL AS STRING)
    END AS `_s16`,
    CASE
      WHEN COALESCE(INSTR(LOWER(`t15`.`user__role`), 'student') > 0, FALSE)
      THEN 'student'
      ELSE CAST(NULL AS STRING)
    END AS `_s17`,
    COALESCE(INSTR(LOWER(`t15`.`user__role`), 'student') > 0, FALSE) AS `_s18`,
    `t15`.`_s3` AS `_s19`
  FROM (
    SELECT
      `t14`.`user__user_id`,
      `t14`.`user__email`,
      `t14`.`user__account_id`,
      `t14`.`user__created_at`,
      `t14`.`user__plan`,
      `t14`.`user__role`,
      `t14`.`last_seen_at`,
      `t14`.`account__account_id`,
      `t14`.`account__domain`,
      `t14`.`account__industry`,
      `t14`.`account__employees`,
      `t14`.`account__tech_stack`,
      `t14`.`account__seats`,
      `t14`.`account__name`,
      `t14`.`account__country`,
      `t14`.`account__plan`,
      `t14`.`user__email_domain`,
      COALESCE(
        (
          `t14`.`user__email_domain` IS NOT NULL
        )
        AND NOT (
          `t14`.`user__email_domain` IN (
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
      ) AS `user__is_business_email`,
      COALESCE(COALESCE(`t14`.`user__plan` IN ('paid'), FALSE), FALSE) AS `user__is_paid`,
      ieee_divide(
        CAST(UNIX_SECONDS(DATETIME('2026-10-01T00:00:00')) AS FLOAT64) - CAST(UNIX_SECONDS(`t14`.`user__created_at`) AS FLOAT64),
        86400.0
      ) AS `user__days_since_signup`,
      ieee_divide(
        CAST(UNIX_SECONDS(DATETIME('2026-10-01T00:00:00')) AS FLOAT64) - CAST(UNIX_SECONDS(`t14`.`last_seen_at`) AS FLOAT64),
        86400.0
      ) AS `user__days_since_seen`,
      ieee_divide(CAST(UNIX_SECONDS(`t14`.`last_seen_at`) AS FLOAT64), 86400.0) AS `user__seen_day`,
      FALSE AS `user__sales_touched`,
      CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) AS `signal__active`,
      CAST(COALESCE(`t14`.`a__features`, 0) AS FLOAT64) AS `signal__features`,
      COALESCE(`t14`.`a__pricing`, 0) AS `signal__pricing`,
      CAST(COALESCE(`t14`.`a__sales`, 0) AS FLOAT64) AS `signal__sales`,
      COALESCE(REGEXP_CONTAINS(`t14`.`user__role`, '(?i)vp'), FALSE) AS `_s1`,
      COALESCE(CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) >= 3.0, FALSE) AS `_s2`,
      COALESCE(CAST(COALESCE(`t14`.`a__features`, 0) AS FLOAT64) >= 3.0, FALSE) AS `_s3`,
      COALESCE(COALESCE(`t14`.`a__pricing`, 0) >= 1, FALSE) AS `_s4`,
      COALESCE(CAST(COALESCE(`t14`.`a__sales`, 0) AS FLOAT64) >= 1, FALSE) AS `_s5`,
      CASE
        WHEN COALESCE(REGEXP_CONTAINS(`t14`.`user__role`, '(?i)vp'), FALSE)
        THEN 10
        ELSE 0
      END AS `_s6`,
      CASE
        WHEN COALESCE(CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) >= 3.0, FALSE)
        THEN CAST(FLOOR(
          IF(
            IF(
              (
                CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0
              ) IS NULL,
              CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0,
              LEAST(20.0, CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0)
            ) IS NULL,
            IF(
              (
                CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0
              ) IS NULL,
              CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0,
              LEAST(20.0, CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0)
            ),
            GREATEST(
              -20.0,
              IF(
                (
                  CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0
                ) IS NULL,
                CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0,
                LEAST(20.0, CAST(COALESCE(`t14`.`a__active`, 0) AS FLOAT64) * 2.0)
              )
            )
          ) + 0.5
        ) AS INT64)
        ELSE CAST(0 AS INT64)
      END AS `_s7`,
      CASE
        WHEN COALESCE(CAST(COALESCE(`t14`.`a__features`, 0) AS FLOAT64) >= 3.0, FALSE)
        THEN 10
        ELSE 0
      END AS `_s8`,
      CASE WHEN COALESCE(COALESCE(`t14`.`a__pricing`, 0) >= 1, FALSE) THEN 5 ELSE 0 END AS `_s9`,
      CASE
        WHEN COALESCE(CAST(COALESCE(`t14`.`a__sales`, 0) AS FLOAT64) >= 1, FALSE)
        THEN 15
        ELSE 0
      END AS `_s10`
    FROM (
      SELECT
        `t13`.`user__user_id`,
        `t13`.`user__email`,
        `t13`.`user__account_id`,
        `t13`.`user__created_at`,
        `t13`.`user__plan`,
        `t13`.`user__role`,
        `t13`.`last_seen_at`,
        `t13`.`a__active`,
        `t13`.`a__features`,
        `t13`.`a__pricing`,
        `t13`.`a__sales`,
        `t13`.`account__account_id`,
        `t13`.`account__domain`,
        `t13`.`account__industry`,
        `t13`.`account__employees`,
        `t13`.`account__tech_stack`,
        `t13`.`account__seats`,
        `t13`.`account__name`,
        `t13`.`account__country`,
        `t13`.`account__plan`,
        IF(
          (
            INSTR(`t13`.`user__email`, '@') - 1
          ) >= 0,
          SUBSTRING(
            LOWER(`t13`.`user__email`),
            IF(
              (
                (
                  INSTR(`t13`.`user__email`, '@') - 1
                ) + 1 + 1
              ) >= 1,
              (
                INSTR(`t13`.`user__email`, '@') - 1
              ) + 1 + 1,
              (
                INSTR(`t13`.`user__email`, '@') - 1
              ) + 1 + 1 + LENGTH(LOWER(`t13`.`user__email`))
            )
          ),
          CAST(NULL AS STRING)
        ) AS `user__email_domain`
      FROM (
        SELECT
          `t12`.`user__user_id`,
          `t12`.`user__email`,
          `t12`.`user__account_id`,
          `t12`.`user__created_at`,
          `t12`.`user__plan`,
          `t12`.`user__role`,
          `t12`.`last_seen_at`,
          `t12`.`a__active`,
          `t12`.`a__features`,
          `t12`.`a__pricing`,
          `t12`.`a__sales`,
          `t5`.`account__account_id`,
          `t5`.`account__domain`,
          `t5`.`account__industry`,
          `t5`.`account__employees`,
          `t5`.`account__tech_stack`,
          `t5`.`account__seats`,
          `t5`.`account__name`,
          `t5`.`account__country`,
          `t5`.`account__plan`
        FROM (
          SELECT
            `t10`.*
            EXCEPT (`user_id`)
          FROM (
            SELECT
              `t7`.`user__user_id`,
              `t7`.`user__email`,
              `t7`.`user__account_id`,
              `t7`.`user__created_at`,
              `t7`.`user__plan`,
              `t7`.`user__role`,
              `t9`.`user_id`,
              `t9`.`last_seen_at`,
              `t9`.`a__active`,
              `t9`.`a__features`,
              `t9`.`a__pricing`,
              `t9`.`a__sales`
            FROM (
              SELECT
                NULLIF(`t1`.`user_id`, '') AS `user__user_id`,
                `t1`.`email` AS `user__email`,
                NULLIF(`t1`.`account_id`, '') AS `user__account_id`,
                `t1`.`created_at` AS `user__created_at`,
                `t1`.`plan` AS `user__plan`,
                `t1`.`role` AS `user__role`
              FROM `users` AS `t1`
              WHERE
                NULLIF(`t1`.`user_id`, '') IS NOT NULL
                AND (
                  (
                    `t1`.`created_at` IS NULL
                  )
                  OR (
                    `t1`.`created_at` < DATETIME('2026-10-01T00:00:00')
                  )
                )
            ) AS `t7`
            LEFT OUTER JOIN (
              SELECT
                `t4`.`user_id`,
                MAX(`t4`.`timestamp`) AS `last_seen_at`,
                COUNT(
                  DISTINCT IF(
                    `t4`.`timestamp` >= TIMESTAMP_ADD(DATETIME('2026-10-01T00:00:00'), INTERVAL '-30' DAY),
                    DATE(`t4`.`timestamp`),
                    NULL
                  )
                ) AS `a__active`,
                COUNT(
                  DISTINCT IF(
                    `t4`.`event` = 'feature_used',
                    LAX_STRING(`t4`.`properties`['feature']),
                    CAST(NULL AS STRING)
                  )
                ) AS `a__features`,
                SUM(
                  IF(
                    `t4`.`event` = 'pricing_viewed',
                    EXP(
                      ieee_divide(
                        CAST(UNIX_SECONDS(DATETIME('2026-10-01T00:00:00')) AS FLOAT64) - CAST(UNIX_SECONDS(`t4`.`timestamp`) AS FLOAT64),
                        86400.0
                      ) * -0.09902102579427789
                    ),
                    CAST(NULL AS FLOAT64)
                  )
                ) AS `a__pricing`,
                COUNTIF(`t4`.`event` = 'demo_requested') AS `a__sales`
              FROM (
                SELECT
                  `t2`.`message_id`,
                  `t2`.`user_id`,
                  `t2`.`anonymous_id`,
                  `t2`.`account_id`,
                  `t2`.`event`,
                  `t2`.`timestamp`,
                  CAST(`t2`.`properties` AS JSON) AS `properties`
                FROM `events` AS `t2`
                WHERE
                  `t2`.`timestamp` < DATETIME('2026-10-01T00:00:00') AND `t2`.`user_id` IS NOT NULL
              ) AS `t4`
              GROUP BY
                1
            ) AS `t9`
              ON `t7`.`user__user_id` = `t9`.`user_id`
          ) AS `t10`
        ) AS `t12`
        LEFT OUTER JOIN (
          SELECT
            NULLIF(`t0`.`account_id`, '') AS `account__account_id`,
            `t0`.`domain` AS `account__domain`,
            `t0`.`industry` AS `account__industry`,
            `t0`.`employees` AS `account__employees`,
            `t0`.`tech_stack` AS `account__tech_stack`,
            `t0`.`seats` AS `account__seats`,
            CAST(NULL AS STRING) AS `account__name`,
            CAST(NULL AS STRING) AS `account__country`,
            CAST(NULL AS STRING) AS `account__plan`
          FROM `accounts` AS `t0`
        ) AS `t5`
          ON `t12`.`user__account_id` = `t5`.`account__account_id`
      ) AS `t13`
    ) AS `t14`
  ) AS `t15`
) AS `t16`

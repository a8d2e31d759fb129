"""The demo world's vocabulary: industries, stacks, roles, names, events, with their weights."""

from __future__ import annotations

import numpy as np

INDUSTRIES = np.array(
    [
        "software",
        "fintech",
        "ecommerce",
        "media",
        "professional_services",
        "healthcare",
        "manufacturing",
        "education",
        "nonprofit",
        "government",
    ]
)
INDUSTRY_P = np.array([0.24, 0.10, 0.12, 0.07, 0.12, 0.09, 0.09, 0.07, 0.05, 0.05])
CORE_INDUSTRIES = {"software", "fintech", "ecommerce", "media", "professional_services"}
COUNTRIES = np.array(["US", "GB", "DE", "FR", "CA", "AU", "NL", "IN", "BR", "SE"])
COUNTRY_P = np.array([0.42, 0.12, 0.09, 0.06, 0.07, 0.05, 0.04, 0.08, 0.04, 0.03])
STACK = np.array(
    [
        "snowflake",
        "dbt",
        "bigquery",
        "postgres",
        "salesforce",
        "hubspot",
        "segment",
        "looker",
        "tableau",
        "excel",
    ]
)
STACK_P = np.array([0.25, 0.2, 0.15, 0.4, 0.35, 0.3, 0.15, 0.12, 0.2, 0.5])
ROLES = np.array(
    [
        "Software Engineer",
        "Data Analyst",
        "Product Manager",
        "VP Engineering",
        "Head of Data",
        "CTO",
        "Founder",
        "Marketing Manager",
        "Consultant",
        "Director of Operations",
        "Student",
    ]
)
ROLE_P = np.array([0.24, 0.18, 0.12, 0.05, 0.05, 0.03, 0.04, 0.1, 0.07, 0.06, 0.06])
SENIOR = {"VP Engineering", "Head of Data", "CTO", "Founder", "Director of Operations"}
FREE_MAIL = np.array(["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com"])
COMPETITORS = ["rivalmetrics.io", "copycat-analytics.com", "lookalike.ai"]
FEATURES = np.array(
    [
        "dashboards",
        "reports",
        "alerts",
        "integrations",
        "api",
        "exports",
        "automations",
        "sql_editor",
    ]
)
WORDS = np.array(
    [
        "acme",
        "globex",
        "initech",
        "umbrella",
        "stark",
        "wayne",
        "wonka",
        "hooli",
        "pied",
        "piper",
        "vandelay",
        "cyberdyne",
        "tyrell",
        "soylent",
        "aperture",
        "blue",
        "sun",
        "north",
        "river",
        "peak",
        "nova",
        "bright",
        "lumen",
        "delta",
        "orbit",
        "quant",
        "vertex",
        "echo",
        "atlas",
        "zen",
        "pixel",
        "cobalt",
    ]
)
SUFFIX = np.array(["labs", "corp", "systems", "tech", "group", "io", "cloud", "works", "hq", "ai"])
FIRST = np.array(
    [
        "ana",
        "ben",
        "chen",
        "dara",
        "eli",
        "fatima",
        "gus",
        "hana",
        "ivan",
        "jo",
        "kai",
        "lena",
        "mo",
        "nia",
        "omar",
        "pia",
        "quinn",
        "ravi",
        "sara",
        "tom",
        "uma",
        "vik",
        "wen",
        "xena",
        "yuki",
        "zoe",
    ]
)
LAST = np.array(
    [
        "smith",
        "garcia",
        "kim",
        "nguyen",
        "patel",
        "muller",
        "rossi",
        "silva",
        "cohen",
        "ivanova",
        "okafor",
        "tanaka",
        "jensen",
        "dubois",
        "khan",
        "lopez",
    ]
)

# Product event mix on an active day, before intent shifts it.
PRODUCT_EVENTS = np.array(
    [
        "session_started",
        "feature_used",
        "project_created",
        "invite_sent",
        "pricing_viewed",
        "upgrade_clicked",
    ]
)
MARKETING_EVENTS = np.array(
    [
        "email_opened",
        "email_clicked",
        "content_downloaded",
        "webinar_attended",
        "form_submitted",
        "site_visited",
        "ad_clicked",
    ]
)
ONBOARDING = [
    "onboarding_profile_completed",
    "onboarding_workspace_created",
    "onboarding_first_dashboard",
]
FREE_PROJECT_QUOTA = 5

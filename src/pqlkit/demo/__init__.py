"""The demo: a generated product-led SaaS, loaded into a database and scored."""

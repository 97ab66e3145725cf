"""The Domo API layer: the HTTP client, authentication, API records, errors and polling.

It knows HTTP and Domo, nothing of Dagster or S3 (a test imports it with Dagster blocked).
"""

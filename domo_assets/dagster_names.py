"""Names Dagster 1.13.27 uses but does not export publicly, kept in one place.

``tests/test_dagster_names.py`` compares each with Dagster's own (private) constant, so a Dagster
upgrade that renames one fails a test rather than a run.
"""

# The implicit asset job (the one the UI's Materialize button runs): the change sensor and the
# schedules request runs of it with an asset selection instead of defining a job each, which
# Dagster would resolve at every code-location load (see the README's "Performance").
IMPLICIT_ASSET_JOB_NAME = "__ASSET_JOB"
# The tag carrying an observation's data version: the change sensor records a DataSet's
# lastUpdated as one (AssetObservation takes no data_version argument).
DATA_VERSION_TAG = "dagster/data_version"
# The keys of Dagster's TableMetadataSet, which the UI shows as the row count and the columns.
ROW_COUNT_KEY = "dagster/row_count"
COLUMN_SCHEMA_KEY = "dagster/column_schema"
TABLE_NAME_KEY = "dagster/table_name"

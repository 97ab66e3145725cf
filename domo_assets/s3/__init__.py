"""The S3 destination layer: the guard, what landed (HEAD, header read, copy), verification,
the manifest, the credentials handed to Domo, and whose request an export answers.

It knows S3 (through boto3) and the Domo layer's records, nothing of Dagster.
"""

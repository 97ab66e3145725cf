"""Column names as the Glue tables and the Parquet files carry them: one function for both.

Athena reads a Parquet table's columns by name, so the names the Parquet files are written
under (``s3/parquet.py``) and the names the Parquet table declares (``s3/glue.py``) must be the
same strings. Both come from :func:`table_column_names`, never from two spellings of one rule.

Why the files take the table's names rather than the table taking Domo's: Athena and Hive
lower-case every name and take only letters, digits and ``_`` in a table definition (a Glue
column ``Customer ID`` is not usable from Athena), and Spark refuses spaces in Parquet column
names. Domo's names (``Customer ID``) therefore cannot be the table's, and the files follow the
table (``customer_id``); the Domo name is kept in each Glue column's comment and in each Parquet
field's metadata.

Plain Python: no AWS, no Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

UTF8_BOM = "\ufeff"
"""A UTF-8 BOM read as text: glued to the first name of a header read without stripping it."""
MAX_NAME_LENGTH = 255
"""Glue's longest column name."""
EMPTY_NAME = "_"
"""A name with no letter or digit Athena can use (``%``, ``漢字``) becomes this."""
_UNSAFE = re.compile(r"[^a-z0-9_]+")


def domo_column_name(name: str) -> str:
    """A Domo column name as Domo spells it: without a BOM read from the start of a header."""
    return name.removeprefix(UTF8_BOM)


def table_column_names(domo_names: Sequence[str]) -> tuple[str, ...]:
    """The Glue (and Parquet) names of a table's columns, in the order given.

    Each name is lower-cased, every run of characters other than ``a-z``, ``0-9`` and ``_``
    becomes one ``_``, and ``_`` is trimmed from both ends (``Customer ID`` -> ``customer_id``,
    a leading BOM dropped first). Names that come out equal (``Amount`` and ``amount``) are told
    apart deterministically: the first column keeps the name, each later one takes the smallest
    ``_2``, ``_3``... that is neither another column's own name nor taken already, so a column
    whose own name is ``amount_2`` keeps it whatever comes before it. The result depends only on
    the names and their order.

    Args:
        domo_names: The columns' Domo names, in file order.

    Returns:
        One name per column, each 1 to 255 characters of ``a-z``, ``0-9`` and ``_``, all distinct.
    """
    bases = [_base_name(name) for name in domo_names]
    own = set(bases)
    taken: set[str] = set()
    names: list[str] = []
    for base in bases:
        name = base
        suffix = 1
        while name in taken or (name != base and name in own):
            suffix += 1
            tail = f"_{suffix}"
            name = base[: MAX_NAME_LENGTH - len(tail)] + tail
        taken.add(name)
        names.append(name)
    return tuple(names)


def _base_name(name: str) -> str:
    cleaned = _UNSAFE.sub("_", domo_column_name(name).strip().lower()).strip("_")
    return cleaned[:MAX_NAME_LENGTH] or EMPTY_NAME

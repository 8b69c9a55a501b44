"""Recipients file (CSV or Parquet) -> slices of validated, normalised recipient rows.

:func:`open_recipients` checks what concerns the file as a whole and raises
:class:`~campaign.errors.InputFileError` (one line that names the file) before any row is used.
:meth:`RecipientSource.slices` then reads the file a slice of rows at a time, so that memory
stays bounded whatever its size, and turns each slice into one row per recipient
(:func:`prepare_slice`, pure): the row's number, its identity as written and normalised (phone
numbers to E.164, see :mod:`campaign.phones`), why it is rejected if it is, and the message's
parameters as JSON.

Every cell is read as text, so identities keep their leading ``+`` and zeros. Duplicates are
decided over the whole file (:meth:`RecipientSource.duplicates`, then
:meth:`Duplicates.mark` of each slice): the first valid row of an identity is the recipient.

Modules: ``files`` (the checks of the file before any parsing), ``source`` (opening, slicing),
``csvblocks`` (bounded CSV reading), ``rows`` (the pure per-slice work), ``duplicates``
(duplicates over the whole file), ``normalised`` (the first pass's phone numbers, kept for the
second).
"""

from campaign.loading.duplicates import Duplicates
from campaign.loading.normalised import NormalisedNumbers
from campaign.loading.rows import (
    INVALID_PHONE,
    MISSING_IDENTITY,
    OUTPUT_SCHEMA,
    Parameter,
    SlicePlan,
    missing_parameter,
    prepare_slice,
)
from campaign.loading.source import LoadSpec, PassStopped, RecipientSource, open_recipients

__all__ = [
    "INVALID_PHONE",
    "MISSING_IDENTITY",
    "OUTPUT_SCHEMA",
    "Duplicates",
    "LoadSpec",
    "NormalisedNumbers",
    "Parameter",
    "PassStopped",
    "RecipientSource",
    "SlicePlan",
    "missing_parameter",
    "open_recipients",
    "prepare_slice",
]

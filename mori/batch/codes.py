"""The pipeline's own error codes: the ``error_code`` of a failed or pending row or order.

A row or order that fails at MORI carries MORI's own ``code`` instead (for example
``FILE_PROCESSING_FAILED``), so the audit's ``error_code`` column is a string and this enum is
the part of it that the pipeline defines. Each member's value is its name; being a ``str``, a
member goes into a ledger, a Parquet file or a log as its text.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode"]


class ErrorCode(StrEnum):
    """Why the pipeline failed a manifest, a row, an image or an order, or left it pending."""

    # -- the manifest or the source as a whole: the run stops before anything is planned
    MANIFEST_NOT_FOUND = "MANIFEST_NOT_FOUND"  # no manifest (or a folder) at its URI
    MANIFEST_UNREADABLE = "MANIFEST_UNREADABLE"  # cannot be read or parsed
    MANIFEST_UNSUPPORTED_FORMAT = "MANIFEST_UNSUPPORTED_FORMAT"  # not .csv, .parquet or .jsonl
    MANIFEST_EMPTY = "MANIFEST_EMPTY"  # no rows
    MANIFEST_MISSING_COLUMN = "MANIFEST_MISSING_COLUMN"  # no ``source`` column
    MANIFEST_WRONG_SCHEMA = "MANIFEST_WRONG_SCHEMA"  # a Parquet ``source`` column not of strings
    SOURCE_NOT_FOUND = "SOURCE_NOT_FOUND"  # the source folder or bucket does not exist
    SOURCE_UNREADABLE = "SOURCE_UNREADABLE"  # the source cannot be listed

    # -- one row: failed in this run, the rest of the batch goes on
    EMPTY_SOURCE = "EMPTY_SOURCE"  # the ``source`` cell is empty
    INVALID_SOURCE = "INVALID_SOURCE"  # not a path, an object URI or a URL; or a folder
    UNSUPPORTED_SCHEME = "UNSUPPORTED_SCHEME"  # a scheme other than http(s), s3 or a path
    PATH_TRAVERSAL = "PATH_TRAVERSAL"  # a path outside the manifest's folder
    INVALID_URL = "INVALID_URL"  # a malformed URL, or one without a host
    URL_HAS_CREDENTIALS = "URL_HAS_CREDENTIALS"  # ``user:password@`` in the URL
    URL_PRIVATE_ADDRESS = "URL_PRIVATE_ADDRESS"  # a host MORI must not be sent to
    INVALID_FILE_NAME = "INVALID_FILE_NAME"  # no file name, or control or path characters
    FILE_NAME_TOO_LONG = "FILE_NAME_TOO_LONG"  # over MORI's file name limit in UTF-8
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"  # not a format MORI accepts
    FILE_NOT_FOUND = "FILE_NOT_FOUND"  # no file at the source
    FILE_UNREADABLE = "FILE_UNREADABLE"  # the file cannot be read
    FILE_TOO_LARGE = "FILE_TOO_LARGE"  # over MORI's size limit
    EMPTY_FILE = "EMPTY_FILE"  # zero bytes
    INVALID_IMAGE = "INVALID_IMAGE"  # does not decode, is damaged or too many pixels
    DUPLICATE_ROW = "DUPLICATE_ROW"  # the same image as an earlier row of the manifest

    # -- an image in an order
    FILE_FAILED = "FILE_FAILED"  # MORI failed the file without a code of its own
    SOURCE_CHANGED = "SOURCE_CHANGED"  # the source's bytes changed or vanished after planning
    OUTPUT_MISSING = "OUTPUT_MISSING"  # MORI's result holds no output for the image
    OUTPUT_AMBIGUOUS = "OUTPUT_AMBIGUOUS"  # several outputs could be the image's
    OUTPUT_UNREADABLE = "OUTPUT_UNREADABLE"  # the result archive or file cannot be read
    OUTPUT_INVALID = "OUTPUT_INVALID"  # the output is not an image MORI accepts
    OUTPUT_DIMENSIONS = "OUTPUT_DIMENSIONS"  # the output's size differs from the source's

    # -- an order
    ORDER_FAILED = "ORDER_FAILED"  # MORI failed the order without a code of its own
    ORDER_EXPIRED = "ORDER_EXPIRED"  # MORI expired the result before it was downloaded
    INVALID_RESPONSE = "INVALID_RESPONSE"  # MORI's answer could not be read; a later run asks again

    # -- pending: a later run, finalize or reconcile finishes it
    WAITING_FOR_MORI = "WAITING_FOR_MORI"  # the wait for MORI ran out; the order is confirmed
    ORDER_INCOMPLETE = "ORDER_INCOMPLETE"  # the order was not finished in this run

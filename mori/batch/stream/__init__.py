"""Planning a run of any size in bounded memory: its rows in columns, a window of keys at a time.

A run's rows go through three passes, none of which holds every row:

1. the survey (:mod:`~.survey`): the manifest read a chunk at a time, each row validated,
   fingerprinted and keyed in columns (:mod:`mori.batch.manifest.columnar`), and filed by the
   first byte of its image key (:mod:`~.keyspool`), on local disk when the run is big;
2. the triage (:mod:`~.triage`, :meth:`~.run.StreamRun.triage`): a window of consecutive key
   ranges at a time, its rows sorted by key, duplicates marked, looked up in the ledger and
   counted; the rows nothing is sent for go to the audit (:mod:`~.auditing`, :mod:`~.outcome`);
3. window by window: the window's new images planned and their intent recorded under the
   planning lock (:mod:`~.windowplan`), its orders driven by the caller, its rows written to
   the audit with their outcomes.

Every row of an image is in the window of its key, so duplicates are found and a plan made
without the other windows; the orders of a window are a function of its images.
"""

from mori.batch.stream.auditing import ImagesTable, OrdersTable, RunAudit
from mori.batch.stream.run import StreamRun
from mori.batch.stream.survey import WINDOW_ROWS, Survey, survey_items, survey_manifest

__all__ = [
    "WINDOW_ROWS",
    "ImagesTable",
    "OrdersTable",
    "RunAudit",
    "StreamRun",
    "Survey",
    "survey_items",
    "survey_manifest",
]

"""The live web view of a run or a sweep: ``python -m rayevolve.ui RUN_OR_SWEEP_DIR``, or
``ui.port=PORT`` to serve it from the driver while the run goes.

It reads the run's Parquet log (the parts once, the write-ahead tail at each refresh) and
shows what `rayevolve.analysis` computes: best score so far, evaluations per island,
migrations, failures grouped by message, where every actor runs, the lineage of the best
programs (click a program for its code, coloured diff, metrics, evaluator feedback, model
and prompt) and, for a sweep, the settings that vary with their mean and interval over
seeds. Dash serves the page and its Plotly charts from the installed packages: nothing is
fetched from the network.

* `views`: figures and tables from a `RunData` (no server, testable alone).
* `app`: the Dash layout and callbacks.
* `server`: the HTTP server, in the foreground or in a thread of the driver.
"""

"""One run, as the driver conducts it: its jobs in one module each.

`checks` (what is refused before anything starts), `actors` (the shared actors and
where they run), `resume` (what a resumed run must agree with), `progress` (the status
line), `summary` (the result and its figures), `webview` (the live view's server),
`lock` (one driver per run folder), `stopping` (when to stop) and `controller` (the
phases in order).
"""

"""The evaluators' library: what a task's ``evaluator.py`` imports, inside the sandbox.

`candidate_call` runs the candidate's function in a fresh child process and returns its
data (``call_isolated``: what an evaluator uses to keep the judged program out of its own
process); `decode` reads a candidate's output; `judge` is the kernel judge (checks,
vendor baseline, timer, verdict) the GPU kernel tasks are built on.

Nothing here starts Ray or knows the engine; the engine's side is `rayevolve.sandbox`.
"""

"""The engine's sandbox: how a candidate is run and kept from its judge.

The evaluator pool and its actors (`pool`, `actor`), one candidate's run under limits
(`runner`), the ways a node confines it (`confinement`: namespaces via `nsinit`, macOS's
`seatbelt`, none), the fork server and zygote that start judges fast, the judge's child
(`child`, run by path, stdlib only), the verdict channel (`verdict`), the candidate's
private folders (`scratch`, `taskcopy`, `view`) and OpenEvolve's import shims.

Task evaluators never import this package; what they may import is `rayevolve.evaluators`.
"""

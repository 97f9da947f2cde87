"""Evaluation: sandboxed candidate runs, their classified results, and the actor pool."""

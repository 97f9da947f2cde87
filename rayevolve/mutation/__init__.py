"""Mutation: the shared mutator actor and its backends (offline now; model-backed ones
plug into the same `MutationBackend` interface)."""

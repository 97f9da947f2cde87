# EVOLVE-BLOCK-START
def guess():
    """The number to find (the evaluator knows it)."""
    return 1.0


# EVOLVE-BLOCK-END

# A task whose evaluation costs (almost) nothing: what remains is the engine's overhead.
# EVOLVE-BLOCK-START
A = 1.0
B = 2.0
C = 3
# EVOLVE-BLOCK-END

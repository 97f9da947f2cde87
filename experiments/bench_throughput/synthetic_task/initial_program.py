# A program whose evaluation costs a known, fixed time (BENCH_EVAL_S): the benchmark's
# ideal throughput is then computable. Its constants give the mutator something to change.
# EVOLVE-BLOCK-START
A = 1.0
B = 2.0
C = 3.0
D = 0.25
# EVOLVE-BLOCK-END

import ctypes
import time

# EVOLVE-BLOCK-START
BEHAVIOUR = 0
VALUE = 1.0
# EVOLVE-BLOCK-END

FAILURES = ("raise", "segfault", "hang", "memory", "megabytes")


def run():
    """BEHAVIOUR 0: a good candidate; 1..5: one of five ways to misbehave (cycling)."""
    if BEHAVIOUR == 0:
        return VALUE
    failure = FAILURES[(BEHAVIOUR - 1) % len(FAILURES)]
    if failure == "hang":
        time.sleep(3600)
    if failure == "segfault":
        ctypes.string_at(0)
    if failure == "memory":
        hog = [bytearray(64 << 20) for _ in range(1000)]
        return float(len(hog))
    if failure == "megabytes":
        print("spam " * 1_000_000)
        return VALUE
    raise RuntimeError("candidate raised on purpose")

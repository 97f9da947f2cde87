"""The run directory's writer lock: one live writer, released however the holder ends."""

import subprocess
import sys

from rayevolve.run.lock import RunDirLock


def test_second_writer_is_refused_until_the_first_releases(tmp_path):
    first, second = RunDirLock(tmp_path), RunDirLock(tmp_path)
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    error = second.busy_error(30)
    assert str(tmp_path) in str(error) and "pid" in str(error) and "resume again" in str(error)
    first.release()
    assert second.try_acquire()
    second.release()


def test_lock_of_a_killed_process_is_free_at_once(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from rayevolve.run.lock import RunDirLock\n"
            f"assert RunDirLock({str(tmp_path)!r}).try_acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RunDirLock(tmp_path)
        assert not lock.try_acquire()
        assert f"pid {holder.pid}" in lock.holder()
    finally:
        holder.kill()
        holder.wait()
    assert lock.try_acquire()  # the stale file is still there; the lock is not
    lock.release()

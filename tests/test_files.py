import os
import subprocess
import sys

import pytest

from sew.files import DirectoryInUseError, DirectoryLock


def test_directory_lock_names_the_holder_and_is_released(tmp_path):
    lock = DirectoryLock(tmp_path)
    with pytest.raises(DirectoryInUseError) as err:
        DirectoryLock(tmp_path)
    assert f"pid {os.getpid()}" in str(err.value) and str(tmp_path) in str(err.value)
    lock.release()
    DirectoryLock(tmp_path).release()


def test_a_crashed_holder_does_not_block(tmp_path):
    # The kernel drops a flock when its process dies, however it dies: no stale lock to clear by hand.
    code = f"import os; from sew.files import DirectoryLock; DirectoryLock({str(tmp_path)!r}); os._exit(1)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 1
    assert (tmp_path / ".lock").is_file()
    DirectoryLock(tmp_path).release()



@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_keep_the_users_umask(tmp_path, umask, mode):
    import torch

    from sew.files import atomic_write, current_umask, save_tensors, write_json

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"x": 1})
        save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
        atomic_write(tmp_path / "t.txt", lambda tmp: open(tmp, "w").write("hi"))
    finally:
        os.umask(old)
    for name in ("a.json", "w.safetensors", "t.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_a_forked_child_does_not_keep_the_lock_of_a_dead_parent(tmp_path):
    # Data-loader workers are forked children: they outlive a killed run by seconds, and must not hold its lock.
    code = ("import os, time; from sew.files import DirectoryLock; DirectoryLock(%r)\n"
            "if os.fork() == 0:\n    os.close(1); os.close(2); time.sleep(20); os._exit(0)\n"
            "print(os.getpid(), flush=True); os._exit(1)") % str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    DirectoryLock(tmp_path).release()  # at once, with the child still asleep

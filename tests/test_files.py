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


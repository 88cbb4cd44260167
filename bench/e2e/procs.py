"""Child processes with hard time limits, rusage, and one registry for cleanup.

Every child runs in its own session so that a timeout or Ctrl-C can end it and
whatever it started, by its own process group id and nothing else.
"""
import os
import signal
import subprocess
import time

_live = {}  # pid -> Proc, every child not yet reaped


class Proc:
    """One child; stdout and stderr go to files so a chatty child never blocks."""

    def __init__(self, argv, out_path, err_path, env=None):
        self.argv = [str(a) for a in argv]
        self.out_path = out_path
        self.err_path = err_path
        self.returncode = None
        self.rusage = None
        self.timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self._popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                           start_new_session=True, env=env)
        self.pid = self._popen.pid
        self.started = time.monotonic()
        _live[self.pid] = self

    def poll(self):
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = -1
            _live.pop(self.pid, None)
            return self.returncode
        if pid == 0:
            return None
        self.rusage = rusage
        self.returncode = os.waitstatus_to_exitcode(status)
        self._popen.returncode = self.returncode  # keep Popen from reaping it again
        _live.pop(self.pid, None)
        return self.returncode

    def wait(self, timeout):
        """Waits up to `timeout` seconds; on expiry kills the group and marks timed_out."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                self.timed_out = True
                self.kill()
                break
            time.sleep(0.02)
        return self.returncode

    def kill(self, grace=2.0):
        """SIGTERM to the child's process group, SIGKILL after `grace` seconds."""
        if self.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait_s
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.returncode is not None:
                return

    def cpu_seconds(self):
        """User + system time of the child and the descendants it reaped (None before exit)."""
        if self.rusage is None:
            return None
        return self.rusage.ru_utime + self.rusage.ru_stime

    def cpu_user_seconds(self):
        """User time alone (None before exit): the process's own work, without the kernel's."""
        if self.rusage is None:
            return None
        return self.rusage.ru_utime

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def stderr_tail(self, lines=15):
        return "\n".join(self.stderr().rstrip().splitlines()[-lines:])

    def wait_for_stderr(self, needle, timeout):
        """True once `needle` shows up on stderr; False when the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.stderr():
                return True
            if self.poll() is not None:
                return needle in self.stderr()
            time.sleep(0.02)
        return False


def kill_all():
    """Ends every child still running (used on failure and on Ctrl-C)."""
    for proc in list(_live.values()):
        proc.kill(grace=1.0)


def run(argv, timeout=30, check=True):
    """Short helper command (ip, tc, ethtool): returns CompletedProcess; raises on failure when check."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("command failed ({}): {}\n{}".format(result.returncode, " ".join(map(str, argv)),
                                                                 result.stderr.strip()[-2000:]))
    return result


# /proc/stat columns after "cpu": user nice system idle iowait irq softirq steal ...
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_cpu_times():
    """Whole-machine CPU seconds by kind, from the aggregate line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    values = [int(v) / _CLK_TCK for v in fields[1:9]]
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return dict(zip(names, values))


def cpu_delta(before, after):
    return {k: after[k] - before[k] for k in before}

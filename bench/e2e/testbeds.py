"""Test beds through `mpxdp testbed`, MPTCP set-up in their namespaces, and link byte counters."""
import json
import os
import subprocess

import procs

# The kernel's limit on MPTCP subflows and accepted addresses (MPTCP_PM_ADDR_MAX): beyond 8 links
# MPTCP uses 8 of them.
MPTCP_MAX_SUBFLOWS = 8


class Testbed:
    def __init__(self, mpxdp, name, rates_bps):
        self.mpxdp = mpxdp
        self.name = name
        self.rates_bps = list(rates_bps)  # 0 means unshaped
        self.tx = "mpxdp-{}-tx".format(name)
        self.rx = "mpxdp-{}-rx".format(name)
        self.link_ns = "mpxdp-{}-link".format(name)
        self.info = None

    @property
    def links(self):
        return len(self.rates_bps)

    @property
    def link_sum_bps(self):
        return sum(self.rates_bps) if all(self.rates_bps) else 0

    def up(self):
        argv = [self.mpxdp, "testbed", "up", "--name", self.name, "-J"]
        if all(r == 0 for r in self.rates_bps):
            argv += ["--links", str(self.links)]
        elif len(set(self.rates_bps)) == 1:
            argv += ["--links", str(self.links), "--rate", str(self.rates_bps[0])]
        else:
            argv += ["--rates", ",".join(str(r) for r in self.rates_bps)]
        result = procs.run(argv, timeout=60)
        self.info = json.loads(result.stdout)
        return self.info

    def down(self):
        return procs.run([self.mpxdp, "testbed", "down", "--name", self.name], timeout=60, check=False)

    def sender_ip(self, i):
        return "198.18.{}.1".format(i + 1)

    def receiver_ip(self, i):
        return "198.18.{}.2".format(i + 1)

    def netns(self, ns, *argv):
        return ["ip", "netns", "exec", ns] + list(argv)

    def link_bytes(self):
        """Bytes sent on each sender interface s<i> and received on each r<i>, from sysfs in the namespaces."""
        script = "for d in {}; do cat /sys/class/net/$d/statistics/{}; done"
        tx = procs.run(self.netns(self.tx, "sh", "-c", script.format(
            " ".join("s{}".format(i) for i in range(self.links)), "tx_bytes")), timeout=10).stdout.split()
        rx = procs.run(self.netns(self.rx, "sh", "-c", script.format(
            " ".join("r{}".format(i) for i in range(self.links)), "rx_bytes")), timeout=10).stdout.split()
        return {"tx": [int(v) for v in tx], "rx": [int(v) for v in rx]}

    def enable_mptcp(self):
        """One MPTCP subflow per link (at most 8): the receiver announces r1..r<N-1>, the sender accepts them."""
        extra = min(self.links - 1, MPTCP_MAX_SUBFLOWS)
        for ns in (self.tx, self.rx):
            procs.run(self.netns(ns, "sysctl", "-q", "-w", "net.mptcp.enabled=1"))
            procs.run(["ip", "-n", ns, "mptcp", "endpoint", "flush"])
            procs.run(["ip", "-n", ns, "mptcp", "limits", "set", "subflow", str(extra),
                       "add_addr_accepted", str(extra)])
        for i in range(1, extra + 1):
            procs.run(["ip", "-n", self.rx, "mptcp", "endpoint", "add", self.receiver_ip(i), "dev",
                       "r{}".format(i), "signal"])

    def disable_mptcp(self):
        for ns in (self.tx, self.rx):
            procs.run(["ip", "-n", ns, "mptcp", "endpoint", "flush"], check=False)


def existing_namespaces(prefix):
    result = procs.run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.startswith(prefix)]


def bonding_available():
    """(bool, reason): tries to create a bond device in a throw-away namespace."""
    if os.path.exists("/sys/class/net/bonding_masters"):
        return True, "bonding driver loaded (/sys/class/net/bonding_masters exists)"
    ns = "mpxdp-e2e-bondprobe"
    procs.run(["ip", "netns", "add", ns], check=False)
    try:
        result = procs.run(["ip", "-n", ns, "link", "add", "bondprobe0", "type", "bond", "mode", "balance-rr"],
                           check=False)
        if result.returncode == 0:
            return True, "bonding available (ip link add type bond succeeded)"
        return False, "no bonding in this kernel: `ip link add type bond` fails ({}) and " \
                      "/sys/class/net/bonding_masters is absent".format(result.stderr.strip())
    finally:
        procs.run(["ip", "netns", "del", ns], check=False)


def make_bond(bed):
    """Turns the test bed's links into one balance-rr bond on each side: 198.18.100.1 <-> .2.

    The links lose their own addresses, so only bonding systems run after this.
    """
    for ns, prefix, host in ((bed.tx, "s", 1), (bed.rx, "r", 2)):
        procs.run(["ip", "-n", ns, "link", "add", "bond0", "type", "bond", "mode", "balance-rr", "miimon", "100"])
        for i in range(bed.links):
            dev = "{}{}".format(prefix, i)
            procs.run(["ip", "-n", ns, "addr", "flush", "dev", dev])
            procs.run(["ip", "-n", ns, "link", "set", dev, "down"])
            procs.run(["ip", "-n", ns, "link", "set", dev, "master", "bond0"])
        procs.run(["ip", "-n", ns, "addr", "add", "198.18.100.{}/24".format(host), "dev", "bond0"])
        procs.run(["ip", "-n", ns, "link", "set", "bond0", "up"])
        procs.run(bed.netns(ns, "ethtool", "-K", "bond0", "tso", "off", "gso", "off", "gro", "off"), check=False)


def machine_description():
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""
    model = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    uname = os.uname()
    iperf = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": "{} {}".format(uname.release, uname.version),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "iperf3": iperf[0] if iperf else "",
        "loadavg_at_start": read("/proc/loadavg").split()[:3],
    }

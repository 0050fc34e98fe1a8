"""A network namespace of a test's own (`ip netns`), joined to this one by a veth pair: what
runs inside it reaches this side over a path nft inside can cut or make lossy."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess

NETWORK = ipaddress.ip_network("10.231.0.0/16")  # every Namespace's veth pair is in it


class Namespace:
    """`ip netns` NAME with a veth pair: HOST_IP on this side, NS_IP inside. As a context,
    made on entry (a leftover of an interrupted run with the same pid removed first) and
    removed on exit."""

    def __init__(self) -> None:
        tag = os.getpid() % 10000
        self.name = f"ofrp-f8-{tag}"
        self.outer, self.inner = f"vof{tag}h", f"vof{tag}n"
        subnet = NETWORK[tag % 250 * 256]
        self.host_ip, self.ns_ip = str(subnet + 1), str(subnet + 2)
        self.prefix = ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Namespace:
        self.delete()
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def create(self) -> None:
        run = self._run
        run("ip", "netns", "add", self.name)
        run("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        run("ip", "link", "set", self.inner, "netns", self.name)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.outer)
        run("ip", "link", "set", self.outer, "up")
        run(*self.prefix, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.inner)
        run(*self.prefix, "ip", "link", "set", self.inner, "up")
        run(*self.prefix, "ip", "link", "set", "lo", "up")

    def drop_udp(self) -> None:
        rules = (
            "table inet openfrp_test {\n"
            "  chain in { type filter hook input priority 0; meta l4proto udp drop; }\n"
            "  chain out { type filter hook output priority 0; meta l4proto udp drop; }\n"
            "}\n"
        )
        self._nft(rules)

    def drop_share(self, percent: float, protocol: str = "udp") -> None:
        """Drop `percent` % of the packets of `protocol` (udp or tcp) that come in over the
        veth pair, at random (nft's numgen, in steps of 0.01 %): a lossy path for whatever
        runs inside. Each call replaces the share set before; 0 drops none. (Going out, a
        dropped TCP segment is only a local error its sender retries at once, not a loss.)"""
        if protocol not in ("udp", "tcp"):
            raise ValueError(f"protocol {protocol!r}: udp or tcp")
        rule = (
            f'iifname "{self.inner}" meta l4proto {protocol} numgen random mod 10000 < '
            f"{round(percent * 100)} drop;"
            if percent > 0
            else ""
        )
        rules = (
            "table inet openfrp_loss\n"
            "delete table inet openfrp_loss\n"
            "table inet openfrp_loss {\n"
            f"  chain in {{ type filter hook input priority 0; {rule} }}\n"
            "}\n"
        )
        self._nft(rules)

    def retransmitted(self) -> int:
        """TCP segments this side's sockets to the namespace (or bound to this side's end of
        the veth pair) sent again so far (`ss`): what TCP did about a lossy path."""
        out = subprocess.run(
            ["ss", "-tinH", f"( dst {self.ns_ip} or src {self.host_ip} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sum(int(n) for n in re.findall(r"retrans:\d+/(\d+)", out))

    def _nft(self, rules: str) -> None:
        subprocess.run([*self.prefix, "nft", "-f", "-"], input=rules, text=True, check=True)

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)

    @staticmethod
    def _run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

"""A minimal rtnetlink client (NETLINK_ROUTE) for moving network devices: links and their addresses.

Stdlib only and cheap: `_socket` and `struct` (the `socket` module imports enum). Each request asks for an
ack, and a netlink error comes back as an OSError with the kernel's errno.
"""

import _socket
import os
import struct

from mrunc.executor import libc
from mrunc.executor.flags import CLONE_FLAGS

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
IFLA_IFNAME, IFLA_NET_NS_FD = 3, 28
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_PERMANENT, RT_SCOPE_UNIVERSE, IFF_UP = 0x80, 0, 0x1

HEADER = struct.Struct("=LHHLL")  # nlmsghdr: length, type, flags, sequence, port
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
ATTR = struct.Struct("=HH")  # rtattr: length, type
KEPT_ADDRESS_ATTRS = (IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST)


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    length = ATTR.size + len(payload)
    return ATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """The attributes from `offset` to the end of `data`, by type."""
    found = {}
    while offset + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, offset)
        if length < ATTR.size:
            break
        found[kind] = data[offset + ATTR.size:offset + length]
        offset += _align(length)
    return found


class Route:
    """A NETLINK_ROUTE socket in the network namespace of the process that opens it."""

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request; return the payloads of the replies (a dump's parts), raising on a netlink error."""
        self.seq += 1
        flags |= NLM_F_REQUEST | NLM_F_ACK
        self.sock.sendto(HEADER.pack(HEADER.size + len(body), kind, flags, self.seq, 0) + body, (0, 0))
        replies = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, reply, _, seq, _ = HEADER.unpack_from(data, offset)
                payload = data[offset + HEADER.size:offset + length]
                offset += _align(length)
                if seq != self.seq:
                    continue
                if reply == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return replies  # the ack
                if reply == NLMSG_DONE:
                    return replies
                replies.append(payload)

    def index(self, name: str) -> int:
        """The index of the link called `name` here (RTM_GETLINK)."""
        reply = self.request(RTM_GETLINK, 0, IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0"))
        return IFINFO.unpack_from(reply[0])[2]

    def permanent_global_addresses(self, index: int) -> list[tuple[int, int, dict[int, bytes]]]:
        """(family, prefix length, address attributes) of the link's permanent addresses of global scope:
        the ones a user configured, valid in any namespace (runc carries over the same ones)."""
        found = []
        for reply in self.request(RTM_GETADDR, NLM_F_DUMP, IFADDR.pack(_socket.AF_UNSPEC, 0, 0, 0, 0)):
            family, prefix, flags, scope, at = IFADDR.unpack_from(reply)
            fields = attrs(reply, IFADDR.size)
            if IFA_FLAGS in fields:
                flags = struct.unpack("=I", fields[IFA_FLAGS])[0]
            if at == index and flags & IFA_F_PERMANENT and scope == RT_SCOPE_UNIVERSE:
                found.append((family, prefix, {k: v for k, v in fields.items() if k in KEPT_ADDRESS_ATTRS}))
        return found

    def move(self, index: int, netns_fd: int, name: str) -> None:
        """Move the link into the namespace of `netns_fd`, named `name` there: one message, so the rename
        cannot collide with a name on this side."""
        body = IFINFO.pack(0, 0, index, 0, 0) + attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        self.request(RTM_NEWLINK, 0, body + attr(IFLA_IFNAME, name.encode() + b"\0"))

    def add_address(self, index: int, family: int, prefix: int, fields: dict[int, bytes]) -> None:
        body = IFADDR.pack(family, prefix, 0, RT_SCOPE_UNIVERSE, index) + b"".join(
            attr(k, v) for k, v in sorted(fields.items()))
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))


def route_in(netns_fd: int) -> Route:
    """A NETLINK_ROUTE socket in another network namespace: enter it, open the socket, come back.
    A socket stays in the namespace it was made in."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(netns_fd, CLONE_FLAGS["CLONE_NEWNET"])
        try:
            return Route()
        finally:
            libc.setns(home, CLONE_FLAGS["CLONE_NEWNET"])
    finally:
        os.close(home)

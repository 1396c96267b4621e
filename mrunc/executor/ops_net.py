"""Network device ops: move a host interface into the container's network namespace (linux.netDevices)."""

import errno
import os

from mrunc.executor import netlink
from mrunc.executor.optable import Context, op


@op("netdev_check", "runtime", "devices")
def netdev_check(ctx: Context, devices: list[str]) -> None:
    """Check that each host interface to move exists (RTM_GETLINK), before anything is made or moved."""
    host = netlink.Route()
    try:
        for device in devices:
            _host_index(host, device)
    finally:
        host.close()


@op("netdev_move", "runtime", "device", "name")
def netdev_move(ctx: Context, device: str, name: str) -> None:
    """Move host interface `device` into child's network namespace as `name`, keeping its addresses; set it up.

    As runc does: one RTM_NEWLINK moves and renames; the kernel drops addresses on the way, so the permanent
    ones of global scope are added back inside, then the link is set up. The kernel keeps its MTU and MAC.
    Nothing moves it back: when the namespace goes, the kernel destroys a virtual device and returns a
    physical one to the host's initial namespace.
    """
    target = os.open(f"/proc/{ctx.child_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    host = inside = None
    try:
        host, inside = netlink.Route(), netlink.route_in(target)
        index = _host_index(host, device)
        _check_free(inside, name)
        addresses = host.permanent_global_addresses(index)
        try:
            host.move(index, target, name)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror}: moving {device!r} into the container as {name!r}") from None
        moved = inside.index(name)
        for family, prefix, fields in addresses:
            inside.add_address(moved, family, prefix, fields)
        inside.set_up(moved)
    finally:
        os.close(target)
        for sock in (host, inside):
            if sock:
                sock.close()


def _host_index(host: netlink.Route, device: str) -> int:
    try:
        return host.index(device)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}: no network device {device!r} on the host") from None


def _check_free(inside: netlink.Route, name: str) -> None:
    """Before the move: the kernel moves a device whose new name is taken under its old name, then fails."""
    try:
        inside.index(name)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return
        raise
    raise OSError(errno.EEXIST, f"the container's network namespace already has a device {name!r}")

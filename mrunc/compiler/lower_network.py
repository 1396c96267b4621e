"""linux.netDevices: host network interfaces moved into the container's network namespace (config-linux.md)."""

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError, pointer

IFNAMSIZ = 16  # the kernel's buffer for an interface name, with its terminating NUL
LOOPBACK = "lo"


def check(linux: dict, namespaces: dict[str, str | None], startable: bool) -> None:
    """A network namespace to move into, names the kernel takes, and one device per name in the container.
    Without a network namespace the devices would stay in the host's: refused, as runc does, unless the config
    cannot be started at all (no process; the official example linux-netdevice.json), which gets a note."""
    devices = linux.get("netDevices", {})
    if devices and "network" not in namespaces and startable:
        raise ConfigError("/linux/netDevices", "moving network devices needs a network namespace in "
                          "/linux/namespaces (new, or joined by path); without one the container shares the host's")
    owner: dict[str, str] = {}  # name in the container -> host name
    for host_name, device in sorted(devices.items()):
        where = pointer("linux", "netDevices", host_name)
        _check_name(where, host_name)
        if host_name == LOOPBACK:
            raise ConfigError(where, "the loopback device cannot leave its network namespace")
        if device.get("name"):
            where += "/name"
            _check_name(where, device["name"])
        name = final_name(host_name, device)
        if name == LOOPBACK:
            raise ConfigError(where, "every network namespace has its own 'lo'; allowed: another name")
        if name in owner:
            raise ConfigError(where, f"{name!r} is already the container's name for "
                              f"{pointer('linux', 'netDevices', owner[name])}; each device needs its own name")
        owner[name] = host_name


def _check_name(where: str, name: str) -> None:
    """The kernel's rules for an interface name (dev_valid_name), and no '%' (it makes the name a pattern)."""
    if not name or len(name.encode()) >= IFNAMSIZ:
        raise ConfigError(where, f"got {name!r}; allowed: an interface name of 1 to {IFNAMSIZ - 1} bytes")
    if name in (".", "..") or any(c in "/:%" or c.isspace() for c in name):
        raise ConfigError(where, f"got {name!r}; allowed: an interface name other than '.' or '..', without "
                          "'/', ':', '%' or whitespace")


def final_name(host_name: str, device: dict) -> str:
    """The name in the container: `name`, or the host's when it is missing or empty (as runc)."""
    return device.get("name") or host_name


def lower_check(emit: Emitter, linux: dict, namespaces: dict[str, str | None]) -> None:
    """The spec's check that each device can be moved, as one op over all of them."""
    if linux.get("netDevices") and "network" not in namespaces:
        emit.note("/linux/netDevices", "no network namespace to move the devices into; allowed only because the "
                  "config has no process and cannot be started")
    if linux.get("netDevices"):
        emit("netdev_check", "runtime", "/linux/netDevices", devices=sorted(linux["netDevices"]))


def lower(emit: Emitter, linux: dict) -> None:
    """One op per device, in name order (a JSON object fixes none)."""
    for host_name, device in sorted(linux.get("netDevices", {}).items()):
        emit("netdev_move", "runtime", pointer("linux", "netDevices", host_name), device=host_name,
             name=final_name(host_name, device))

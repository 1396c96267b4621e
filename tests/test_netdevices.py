"""linux.netDevices: host interfaces moved (and renamed) into the container's network namespace.

Lowering and compile-time checks, then real containers. This host's kernel has no dummy driver, so the real tests
move one end of a veth pair made for the test (a virtual device: it dies with the container's network namespace,
taking its peer with it, as the spec says of virtual devices); each test removes whatever remains.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mrunc.compiler import render, render_sh
from mrunc.compiler.errors import ConfigError
from mrunc.review import audit, profiles
from mrunc.review.diff import diff
from mrunc.review.inputs import Subject
from mrunc.review.verify import verify
from tests.conftest import REPO, base_config, mrunc, run_config
from tests.lifecycle_helpers import Lifecycle
from tests.reference import reference_config
from tests.test_lowering import compile_fragment, ops
from tests.test_real_namespaces import named_netns  # noqa: F401  (a fixture)
from tests.test_renderings import _python_script, _run_isolated

NET = {"namespaces": [{"type": "network"}, {"type": "mount"}]}


# --- lowering -------------------------------------------------------------------------------------

def test_each_device_is_one_runtime_move_after_the_namespaces_and_before_init_in_name_order():
    """All of them are checked first, before anything is made (the spec's check)."""
    plan = compile_fragment({"linux": {**NET, "netDevices": {"veth1": {"name": "eth0"}, "enp3s0": {}}}})
    first = plan["ops"][0]
    assert (first["op"], first["proc"], first["args"]) == ("netdev_check", "runtime", {"devices": ["enp3s0", "veth1"]})
    assert ops(plan, "/linux/namespaces", "/linux/netDevices/enp3s0", "/linux/netDevices/veth1")[:4] == [
        ("unshare", "child", "/linux/namespaces", {"flags": ["CLONE_NEWNET", "CLONE_NEWNS"]}),
        ("netdev_move", "runtime", "/linux/netDevices/enp3s0", {"device": "enp3s0", "name": "enp3s0"}),
        ("netdev_move", "runtime", "/linux/netDevices/veth1", {"device": "veth1", "name": "eth0"}),
        ("fork_init", "child", "/linux/namespaces", {}),
    ]


def test_a_device_moves_into_a_joined_network_namespace_and_an_empty_name_keeps_the_hosts():
    plan = compile_fragment({"linux": {"namespaces": [{"type": "network", "path": "/run/netns/x"}, {"type": "mount"}],
                                       "netDevices": {"veth1": {"name": ""}}}})
    assert ops(plan, "/linux/namespaces/0", "/linux/netDevices/veth1") == [
        ("setns", "child", "/linux/namespaces/0", {"type": "network", "path": "/run/netns/x"}),
        ("netdev_move", "runtime", "/linux/netDevices/veth1", {"device": "veth1", "name": "veth1"}),
    ]


def test_a_device_pointer_escapes_a_slash_free_name_as_json_pointer_says():
    plan = compile_fragment({"linux": {**NET, "netDevices": {"a~b": {}}}})
    assert [o["src"] for o in plan["ops"] if o["op"] == "netdev_move"] == ["/linux/netDevices/a~0b"]


# --- compile-time checks --------------------------------------------------------------------------

def _refused(linux: dict) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        compile_fragment({"linux": linux})
    return refused.value


def test_devices_without_a_network_namespace_are_refused():
    error = _refused({"netDevices": {"veth1": {}}})
    assert error.pointer == "/linux/netDevices"
    assert "needs a network namespace in /linux/namespaces" in error.problem


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", ".", "..", "a b", "a\tb", "a:b", "eth%d", "é" * 8])
def test_a_name_the_kernel_would_refuse_or_read_as_a_pattern_is_refused_on_either_side(name):
    on_host = _refused({**NET, "netDevices": {name: {}}})
    assert on_host.pointer == "/linux/netDevices/" + name.replace("/", "~1")
    in_container = _refused({**NET, "netDevices": {"veth1": {"name": name}}}) if name else None
    if in_container:
        assert in_container.pointer == "/linux/netDevices/veth1/name"
    for error in filter(None, (on_host, in_container)):
        assert f"got {name!r}; allowed: an interface name" in error.problem


def test_fifteen_bytes_is_the_longest_name():
    plan = compile_fragment({"linux": {**NET, "netDevices": {"a" * 15: {"name": "b" * 15}}}})
    assert [o["args"] for o in plan["ops"] if o["op"] == "netdev_move"] == [{"device": "a" * 15, "name": "b" * 15}]


@pytest.mark.parametrize("devices, where, problem", [
    ({"veth1": {"name": "eth0"}, "veth2": {"name": "eth0"}}, "/linux/netDevices/veth2/name",
     "'eth0' is already the container's name for /linux/netDevices/veth1"),
    ({"veth1": {"name": "veth2"}, "veth2": {}}, "/linux/netDevices/veth2",
     "'veth2' is already the container's name for /linux/netDevices/veth1"),
    ({"lo": {"name": "lo0"}}, "/linux/netDevices/lo", "the loopback device cannot leave its network namespace"),
    ({"veth1": {"name": "lo"}}, "/linux/netDevices/veth1/name", "every network namespace has its own 'lo'"),
])
def test_two_devices_with_one_name_in_the_container_or_the_loopback_are_refused(devices, where, problem):
    error = _refused({**NET, "netDevices": devices})
    assert (error.pointer, problem in error.problem) == (where, True), error


def test_a_bad_name_is_a_one_line_error_from_the_command_line(bundle):
    config = base_config(["true"])
    config["linux"]["netDevices"] = {"veth1": {"name": "a b"}}
    bundle.write(config)
    result = mrunc("compile", str(bundle.config_path))
    assert result.returncode == 1 and result.stdout == ""
    assert "/linux/netDevices/veth1/name: got 'a b'; allowed: an interface name" in result.stderr
    assert "Traceback" not in result.stderr


# --- real containers ------------------------------------------------------------------------------

def _on_host(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def veth():
    """A veth pair (device, peer) on the host, with names unique to the test; removed if anything remains."""
    if not shutil.which("ip"):
        pytest.skip("needs ip (iproute2) to make a veth pair (not installed on this host)")
    tag = uuid.uuid4().hex[:8]
    device, peer = f"mv{tag}", f"mp{tag}"
    made = _ip("link", "add", device, "type", "veth", "peer", "name", peer, check=False)
    if made.returncode:
        pytest.skip(f"this kernel cannot make a veth pair (CONFIG_VETH): {made.stderr.strip()}")
    try:
        yield device, peer
    finally:
        for name in (device, peer):
            if _on_host(name):
                _ip("link", "del", name, check=False)


def _gone_from_host(*names: str, timeout: float = 5) -> bool:
    """The kernel removes a dead namespace's devices from a work queue, so not at once."""
    deadline = time.monotonic() + timeout
    while any(_on_host(n) for n in names):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_device_is_moved_renamed_and_up_inside_while_it_runs_and_dies_with_the_container(bundle, veth):
    """Inside: the new name, up, its MTU and its permanent global address (not the host-scope one, as runc).
    On the host meanwhile: gone. After exit: the namespace took the veth, and its peer, with it."""
    device, peer = veth
    _ip("link", "set", device, "mtu", "1400")
    _ip("addr", "add", "10.213.7.5/24", "dev", device)
    _ip("addr", "add", "127.0.0.33/8", "dev", device)
    script = "ls /sys/class/net; cat /sys/class/net/c0/mtu /sys/class/net/c0/flags; ip addr show c0; echo ready; read x"
    config = base_config(["sh", "-c", script])
    config["linux"]["netDevices"] = {device: {"name": "c0"}}
    bundle.write(config)
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc", "--root",
               str(bundle.state_root), "run", "--bundle", str(bundle.path), bundle.id]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO))) as run:
        inside = ""
        while (line := run.stdout.readline()) not in ("ready\n", ""):  # until the set-up container waits
            inside += line
        while_running = (_on_host(device), _on_host(peer))
        run.stdin.write("\n")
        run.stdin.close()
        err = run.stderr.read()
    lines = inside.splitlines()
    assert lines[:3] == ["c0", "lo", "1400"], err
    assert int(lines[3], 16) & 0x1  # IFF_UP
    assert "inet 10.213.7.5/24 scope global c0" in inside and "127.0.0.33" not in inside
    assert while_running == (False, True)
    assert run.returncode == 0, err
    assert _gone_from_host(device, peer)


def test_a_device_moved_into_a_joined_namespace_stays_there_after_the_container(bundle, veth, named_netns):  # noqa: F811
    """The namespace's owner decides what becomes of it (runc: nothing moves it back)."""
    device, _ = veth
    config = base_config(["ls", "/sys/class/net"])
    config["linux"]["namespaces"] = [{**ns, "path": str(named_netns)} if ns["type"] == "network" else ns
                                     for ns in config["linux"]["namespaces"]]
    config["linux"]["netDevices"] = {device: {}}
    result = run_config(bundle, config)
    assert (result.returncode, result.stdout.split()) == (0, ["lo", device]), result.stderr
    assert not _on_host(device)
    flags = _ip("-n", named_netns.name, "link", "show", device).stdout.split("<")[1].split(">")[0]
    assert "UP" in flags.split(",")


def test_a_device_moves_into_a_user_namespaces_network_namespace(userns_bundle, veth):
    device, _ = veth
    script = f"cat /proc/self/uid_map; ip link show eth0; ip link show {device} || echo no {device}"
    config = reference_config("runc-spec-rootless.json", ["sh", "-c", script])  # its /sys is the host's
    config["linux"]["namespaces"].append({"type": "network"})
    config["linux"]["netDevices"] = {device: {"name": "eth0"}}
    result = run_config(userns_bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["0", str(os.getuid()), "1"], result.stderr
    assert ": eth0@" in lines[1] and ",UP" in lines[1]
    assert lines[-1] == f"no {device}"
    assert result.returncode == 0


def test_a_missing_host_device_fails_the_check_before_anything_is_made_or_moved(bundle, veth):
    """The device that does exist is not moved (it would die with the namespace); the autouse leak check sees
    that no cgroup was left."""
    device, _ = veth
    missing = f"mx{uuid.uuid4().hex[:8]}"
    config = base_config(["echo", "started"])
    config["linux"]["netDevices"] = {device: {}, missing: {"name": "c0"}}
    result = run_config(bundle, config)
    assert result.returncode != 0 and result.stdout == ""
    devices = sorted([device, missing])
    assert "mrunc: op 0/" in result.stderr
    assert f"[runtime] netdev_check (/linux/netDevices): devices={devices!r}: ENODEV" in result.stderr
    assert f"no network device '{missing}' on the host" in result.stderr
    assert "Traceback" not in result.stderr
    assert _on_host(device)


def test_a_failure_after_the_move_removes_the_cgroups_and_the_namespace_takes_the_veth(bundle, veth):
    """MRUNC_FAULT_AT fails the op after the move (fork_init): runtime kills child, the new namespace goes, and
    the kernel destroys the virtual device in it, as with runc; the autouse leak check sees no cgroup left."""
    device, peer = veth
    config = base_config(["echo", "started"])
    config["linux"]["netDevices"] = {device: {}}
    bundle.write(config)
    plan = mrunc("compile", str(bundle.config_path), private_mounts=False)
    names = [o["op"] for o in json.loads(plan.stdout)["ops"]]
    after = names.index("netdev_move") + 1
    result = run_config(bundle, config, env={"MRUNC_FAULT_AT": str(after)})
    assert result.returncode != 0 and result.stdout == ""
    assert f"op {after}/{len(names)} [child] fork_init" in result.stderr and "EIO" in result.stderr
    assert _gone_from_host(device, peer)


def test_a_name_taken_in_the_joined_namespace_fails_and_the_device_stays_on_the_host(bundle, veth, named_netns):  # noqa: F811
    device, _ = veth
    _ip("-n", named_netns.name, "link", "add", "c0", "type", "veth", "peer", "name", "c1")
    config = base_config(["echo", "started"])
    config["linux"]["namespaces"] = [{**ns, "path": str(named_netns)} if ns["type"] == "network" else ns
                                     for ns in config["linux"]["namespaces"]]
    config["linux"]["netDevices"] = {device: {"name": "c0"}}
    result = run_config(bundle, config)
    assert result.returncode != 0 and result.stdout == ""
    assert f"netdev_move (/linux/netDevices/{device}): device={device} name=c0: EEXIST" in result.stderr
    assert "the container's network namespace already has a device 'c0'" in result.stderr
    assert _on_host(device)


# --- renderings -----------------------------------------------------------------------------------

def test_the_text_listing_and_the_sh_rendering_express_the_move(tmp_path):
    """sh: init moves the device from the host's network namespace (kept open on fd 8) into its own, by `$$`."""
    plan = compile_fragment({"linux": {**NET, "netDevices": {"veth1": {"name": "eth0"}}}})
    listing = render.text(plan)
    assert "runtime netdev_check        devices=['veth1']  # /linux/netDevices" in listing
    assert "runtime netdev_move         device=veth1 name=eth0  # /linux/netDevices/veth1" in listing
    script = render.script(plan, "sh")
    assert render_sh.context(plan)["gaps"] == []
    outer, init = script.split("init_script=$(cat <<'MRUNC_INIT'\n")
    assert "ip link show dev veth1 > /dev/null\n" in outer and "exec 8</proc/self/ns/net\n" in outer
    assert init.startswith("set -eu\n")  # then the helpers for the host's tools after pivot_root, then the move
    assert "\nnsenter --net=/proc/self/fd/8 ip link set dev veth1 netns $$ name eth0\nip link set dev eth0 up\n" in init
    (tmp_path / "plan.sh").write_text(script)
    assert subprocess.run(["sh", "-n", str(tmp_path / "plan.sh")]).returncode == 0


def test_the_py_rendering_runs_a_container_with_a_moved_device_without_mrunc(bundle, veth):
    device, _ = veth
    config = base_config(["ls", "/sys/class/net"])
    config["linux"]["netDevices"] = {device: {"name": "c0"}}
    result = _run_isolated(str(_python_script(bundle, config)))
    assert (result.returncode, result.stdout.split()) == (0, ["c0", "lo"]), result.stderr
    assert _gone_from_host(device)


def test_create_moves_the_device_exec_sees_it_and_delete_takes_it_away(bundle, veth, tmp_path):
    """As runc: the move happens at create, before start; delete kills init and the namespace goes with the veth."""
    device, peer = veth
    lc = Lifecycle(bundle, tmp_path)
    try:
        config = base_config(["sleep", "100"])
        config["linux"]["netDevices"] = {device: {"name": "c0"}}
        assert lc.create(config).returncode == 0, lc.output.read_text()
        assert not _on_host(device)
        inside = lc("exec", bundle.id, "--", "ls", "/sys/class/net")
        assert inside.stdout.split() == ["c0", "lo"], inside.stderr
        assert lc("delete", "--force", bundle.id).returncode == 0
        assert _gone_from_host(device, peer)
    finally:
        lc.cleanup()


# --- review ---------------------------------------------------------------------------------------

def _subject(linux: dict) -> Subject:
    return Subject("netdev", compile_fragment({"linux": linux}), None, "compiled in the test")


def test_the_restricted_audit_names_each_moved_host_interface_and_baseline_does_not():
    subject = _subject({**NET, "netDevices": {"veth1": {"name": "eth0"}}})
    found = [f for f in audit.audit(subject, profiles.load("restricted")).findings
             if f.control == "devices.host-netdev"]
    assert [(f.pointer, f.grants) for f in found] == [("/linux/netDevices/veth1",
                                                       "the host's network interface veth1, as eth0")]
    assert "devices.host-netdev" not in {f.control for f in audit.audit(subject, profiles.load("baseline")).findings}


def test_diff_calls_a_moved_host_interface_raising():
    before, after = _subject(NET), _subject({**NET, "netDevices": {"veth1": {}}})
    changes = [(c.concern, c.key, c.kind, c.new, c.label) for c in diff(before.plan, after.plan)]
    assert changes == [("devices", "network device veth1", "added", {"name": "veth1"}, "raising")]


def test_verify_refuses_a_move_edited_to_after_fork_init():
    plan = compile_fragment({"linux": {**NET, "netDevices": {"veth1": {}}}})
    assert verify(plan).problems == []
    move = next(i for i, o in enumerate(plan["ops"]) if o["op"] == "netdev_move")
    plan["ops"].insert(move + 2, plan["ops"].pop(move))  # now after fork_init and init's cgroup_join_self
    assert verify(plan).problems == [f"/ops/{move + 2}: netdev_move must come after child enters the network "
                                     f"namespace and before fork_init (op {move})"]

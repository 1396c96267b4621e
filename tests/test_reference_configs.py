"""Every reference config runs (runc's specs, podman's real configs), and the official OCI examples: the good ones
are accepted (and run where they can), the bad ones rejected with a clear error naming the field."""

import json
import os
import resource

import pytest

from mrunc.compiler import load
from mrunc.executor.flags import CAPABILITIES, RLIMITS
from mrunc.executor.host import fingerprint
from tests.conftest import mrunc, run_config
from tests.reference import CONFIGS, OFFICIAL, reference_config
from tests.test_real_namespaces import named_netns  # noqa: F401  (a fixture)

STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"


def _cap_eff(config: dict) -> str:
    """The CapEff line /proc/self/status shows for the config's effective capabilities."""
    bits = sum(1 << CAPABILITIES[name] for name in config["process"]["capabilities"]["effective"])
    return f"CapEff:\t{bits:016x}"


def _podman(name: str, bundle, tmp_path, args: list[str]) -> dict:
    """podman's config, with its rootfs, cgroup and the userdata files it binds pointed at ones the test owns."""
    config = reference_config(name, args)
    config["linux"]["cgroupsPath"] = bundle.cgroup
    userdata = tmp_path / "userdata"
    userdata.mkdir()
    for m in config["mounts"]:
        if m.get("type") == "bind":
            source = userdata / os.path.basename(m["source"])
            if source.name == "shm":
                source.mkdir()
            else:
                source.write_text(f"{source.name} from podman\n")
            m["source"] = str(source)
    # podman asked for the hard limits of the host it ran on; raising ours needs CAP_SYS_RESOURCE, which this session
    # lacks: no more than this host's
    for limit in config["process"].get("rlimits", []):
        hard = resource.getrlimit(RLIMITS[limit["type"]])[1] % (1 << 63)  # RLIM_INFINITY: the largest
        limit["soft"], limit["hard"] = min(limit["soft"], hard), min(limit["hard"], hard)
    return config


def test_runc_spec_runs(bundle):
    config = reference_config("runc-spec.json", ["sh", "-c", f"hostname; {STATUS}; ls /sys/fs/cgroup | wc -l"])
    result = run_config(bundle, config)
    assert result.stdout.splitlines()[:4] == ["runc", _cap_eff(config), "NoNewPrivs:\t1", "Seccomp:\t0"], result.stderr
    assert int(result.stdout.splitlines()[4]) > 1  # the v1 controllers of its own cgroup
    assert result.returncode == 0


def test_runc_rootless_spec_runs(bundle):
    config = reference_config("runc-spec-rootless.json", ["sh", "-c", "cat /proc/self/uid_map; ls /sys/class/net"])
    result = run_config(bundle, config)
    lines = result.stdout.split()
    assert lines[:3] == ["0", "0", "1"], result.stderr
    assert len(lines) > 4  # no network namespace: the host's interfaces
    assert result.returncode == 0


def test_podman_config_with_a_joined_netns_runs(bundle, tmp_path, named_netns):  # noqa: F811
    script = (f"hostname; cat /etc/hostname /run/.containerenv; {STATUS}; readlink /proc/self/ns/net;"
              "cat /sys/fs/cgroup/pids/pids.max; ulimit -n; echo $container")
    config = _podman("podman-run-netns.json", bundle, tmp_path, ["sh", "-c", script])
    config["linux"]["namespaces"] = [{**ns, "path": str(named_netns)} if ns["type"] == "network" else ns
                                     for ns in config["linux"]["namespaces"]]
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["0103fb8e95cc", "hostname from podman", ".containerenv from podman"], result.stderr
    assert lines[3:6] == [_cap_eff(config), "NoNewPrivs:\t0", "Seccomp:\t2"]
    nofile = next(limit["soft"] for limit in config["process"]["rlimits"] if limit["type"] == "RLIMIT_NOFILE")
    assert lines[6:] == [f"net:[{os.stat(named_netns).st_ino}]", "2048", str(nofile), "podman"]


def test_podman_tty_config_runs_without_its_terminal(bundle, tmp_path):
    config = _podman("podman-run-tty.json", bundle, tmp_path, ["sh", "-c", f"ls /sys/class/net; {STATUS}"])
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["lo", _cap_eff(config), "NoNewPrivs:\t0", "Seccomp:\t2"], result.stderr


def test_podman_exec_process_runs_as_a_containers_process(bundle, tmp_path):
    """podman's process.json for `exec --process`, run as the process of podman's container config."""
    config = _podman("podman-run-tty.json", bundle, tmp_path, [])
    config["process"] = json.loads((CONFIGS / "podman-exec-process.json").read_text())
    result = run_config(bundle, config)
    assert result.stdout == "from-exec\n", result.stderr
    assert result.returncode == 5


def _official(kind: str) -> list[str]:
    return sorted(p.name for p in (OFFICIAL / kind).glob("*.json"))


@pytest.mark.parametrize("name", _official("good"))
def test_official_good_examples_pass_the_schema(name):
    load.validate(load.parse((OFFICIAL / "good" / name).read_bytes()))


def _official_good(name: str, bundle, args: list[str] | None = None) -> dict:
    config = json.loads((OFFICIAL / "good" / name).read_text())
    config.setdefault("linux", {})["cgroupsPath"] = bundle.cgroup
    if args:
        config["process"] = {"cwd": "/", "args": args, "user": {"uid": 0, "gid": 0}}
    return config


def test_official_minimal_for_start_runs(bundle):
    """No namespaces at all: mrunc binds the rootfs onto itself in its own mount namespace (the container's, which
    it inherits), makes the default devices there, chroots and runs `sh`, which reads its script from stdin."""
    result = run_config(bundle, _official_good("minimal-for-start.json", bundle), input="echo in-container; exit 4\n")
    assert result.stdout == "in-container\n", result.stderr
    assert result.returncode == 4


@pytest.mark.parametrize("name", ["minimal.json", "linux-rdma.json"])
def test_official_examples_without_a_process_compile_and_nothing_starts_them(bundle, name):
    """The spec makes `process` REQUIRED only for start: the plan compiles, says there is nothing to run and
    has no process ops; exec of that plan, run and create refuse it naming /process, leaving nothing behind."""
    bundle.write(_official_good(name, bundle))
    plan_path = bundle.path / "plan.json"
    compiled = mrunc("compile", str(bundle.config_path), "-o", str(plan_path))
    assert compiled.returncode == 0, compiled.stderr
    ops = [o["op"] for o in json.loads(plan_path.read_text())["ops"]]
    assert "execve" not in ops and "chdir" not in ops and "fork_init" in ops
    listing = mrunc("compile", "--format", "text", str(bundle.config_path)).stdout
    assert "note: /process: missing: the config has no process, so there is nothing to start" in listing
    state = ("--root", str(bundle.state_root))
    for command in (("exec", str(plan_path)), (*state, "run", "--bundle", str(bundle.path), bundle.id),
                    (*state, "create", "--bundle", str(bundle.path), bundle.id)):
        result = mrunc(*command)
        assert result.returncode == 1, result.stderr
        assert "/process" in result.stderr and "nothing to start" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert not (bundle.state_root / bundle.id).exists()
    assert "does not exist" in mrunc(*state, "start", bundle.id).stderr


def test_official_minimal_example_without_a_process_runs_once_given_one(bundle):
    config = _official_good("minimal.json", bundle, ["echo", "ran"])
    result = run_config(bundle, config)
    assert result.stdout == "ran\n", result.stderr


def test_official_rdma_example_compiles_and_is_refused_where_the_host_has_no_rdma_controller(bundle):
    """Its rdma limit needs the rdma controller: without one the plan checks for it first and the container is
    refused there, naming the field, before anything is made (as runc refuses it: "cannot set rdma limit")."""
    if "rdma" in fingerprint()["controllers"]:
        pytest.skip("this host has the rdma controller (the example's limit is for a device mlx5_1 it may lack)")
    config = _official_good("linux-rdma.json", bundle, ["echo", "ran"])
    bundle.write(config)
    listing = mrunc("compile", "--format", "text", str(bundle.config_path))
    assert listing.returncode == 0, listing.stderr
    assert "0 runtime cgroup_require      controller=rdma" in listing.stdout
    result = run_config(bundle, config)
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert "[runtime] cgroup_require (/linux/resources/rdma/mlx4_0): controller=rdma" in result.stderr
    assert not (bundle.state_root / bundle.id).exists()


def test_official_netdevice_example_compiles_and_needs_a_network_namespace_to_start(bundle):
    """As given it has no process and no namespaces: it compiles with a note (nothing can start it). Given a
    process, the devices would stay in the host's namespace: refused, as runc does. With a new network namespace
    it lowers to one move per device. Not run: it names the host's real eth0."""
    bundle.write(_official_good("linux-netdevice.json", bundle))
    result = mrunc("compile", "--format", "text", str(bundle.config_path))
    assert result.returncode == 0, result.stderr
    assert "note: /linux/netDevices: no network namespace to move the devices into" in result.stdout
    config = _official_good("linux-netdevice.json", bundle, ["true"])
    bundle.write(config)
    result = mrunc("compile", str(bundle.config_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "/linux/netDevices: moving network devices needs a network namespace in /linux/namespaces" in result.stderr
    config["linux"]["namespaces"] = [{"type": "network"}]
    bundle.write(config)
    result = mrunc("compile", "--format", "text", str(bundle.config_path))
    assert result.returncode == 0, result.stderr
    moves = [line.split("netdev_move")[1].strip() for line in result.stdout.splitlines() if "netdev_move" in line]
    assert moves == ["device=ens4 name=ens4  # /linux/netDevices/ens4",
                     "device=ens5 name=ens5  # /linux/netDevices/ens5",
                     "device=eth0 name=container_eth0  # /linux/netDevices/eth0"]


def test_official_spec_example_compiles(bundle):
    """It cannot run on this host: cpuset.cpus 2-3 on a 2-cpu machine, uid map to host 1000 that cannot reach a
    rootfs under a 0700 directory, sda and hook binaries that do not exist, and no AppArmor or SELinux to take its
    labels; nor hugetlb, net_cls and net_prio controllers for its limits (checked first: the container would be
    refused there). It compiles, with notes; the labels are ops and mount options, as runc applies them."""
    bundle.write(_official_good("spec-example.json", bundle))
    result = mrunc("compile", "--format", "text", str(bundle.config_path))
    assert result.returncode == 0, result.stderr
    lacking = [f"cgroup_require      controller={c}" for c in ("hugetlb", "net_cls", "net_prio")
               if c not in fingerprint()["controllers"]]
    for expected in (*lacking, "set_time_offsets", "write_id_map", "seccomp_load", "sethostname", "setdomainname",
                     "apparmor_profile    name=acme_secure_profile",
                     "selinux_exec_label  label=system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
                     'data=mode=755,size=65536k,context="system_u:object_r:svirt_san'):
        assert expected in result.stdout


@pytest.mark.parametrize("name,pointer", [
    ("invalid-json.json", "/: not valid JSON"),
    ("linux-hugepage.json", "/linux/resources/hugepageLimits/0/pageSize: got \"64kB\""),
    ("linux-netdevice.json", "/linux/netDevices/eth0/name: got 23; allowed: string"),
    ("linux-rdma.json", "/linux/resources/rdma/mlx5_1/hcaHandles: got \"not a uint32\"; allowed: integer"),
])
def test_official_bad_examples_are_rejected_naming_the_field(name, pointer):
    assert name in _official("bad")
    result = mrunc("compile", str(OFFICIAL / "bad" / name))
    assert result.returncode == 1
    assert pointer in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_every_official_bad_example_is_covered():
    assert _official("bad") == ["invalid-json.json", "linux-hugepage.json", "linux-netdevice.json", "linux-rdma.json"]

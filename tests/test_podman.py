"""podman 4 + conmon with mrunc as the OCI runtime: issue 3's scenarios, each run for real in a sandbox."""

import hashlib
import json
import uuid

import pytest

from mrunc import canonical
from tests.conftest import needs_binaries
from tests.engines import SANDBOX_TOOLS, Sandbox, cgroup_parent, podman_env, remove_cgroups, rootfs_tar, wait_for

pytestmark = needs_binaries("podman", *SANDBOX_TOOLS)  # podman finds conmon itself, where its distribution put it

IMAGE = "localhost/mrunc-busybox:test"


class Podman:
    """podman with its own storage, run root, network config and containers.conf, all in the temp dir."""

    def __init__(self, sandbox: Sandbox, tmp) -> None:
        self.sandbox = sandbox
        self.env = podman_env(tmp, {"mrunc": sandbox.runtime}, default="mrunc")
        self.cgroup_parent = ""

    def __call__(self, *args: str, timeout: float = 90):
        return self.sandbox.run("podman", *args, env=self.env, timeout=timeout)

    def run(self, options: list[str], *command: str, timeout: float = 90):
        """`podman run OPTIONS IMAGE COMMAND` of our image, in this test's cgroup parent, never pulling."""
        return self("run", "--pull=never", f"--cgroup-parent={self.cgroup_parent}", *options, IMAGE, *command,
                    timeout=timeout)


@pytest.fixture(scope="module")
def podman_engine(tmp_path_factory, busybox_rootfs):
    tmp = tmp_path_factory.mktemp("podman")
    sandbox = Sandbox(tmp)
    try:
        engine = Podman(sandbox, tmp)
        imported = engine("import", "-q", str(rootfs_tar(busybox_rootfs, tmp / "busybox.tar")), IMAGE)
        assert imported.returncode == 0, imported.stderr
        yield engine
    finally:
        sandbox.close()


@pytest.fixture
def podman(podman_engine):
    """The engine, with a cgroup parent of this test's own; every container and cgroup is gone afterwards."""
    podman_engine.cgroup_parent = cgroup_parent(f"podman-{uuid.uuid4().hex[:8]}")
    yield podman_engine
    removed = podman_engine("rm", "--all", "--force", "--time", "0")
    assert removed.returncode == 0, removed.stderr
    assert remove_cgroups(podman_engine.cgroup_parent) == []


def test_run_rm_echo(podman):
    result = podman.run(["--rm"], "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    calls = podman.sandbox.calls()
    assert any(" create " in c and "--log-format=json" in c for c in calls), calls


def test_exit_codes_propagate(podman):
    assert podman.run(["--rm"], "sh", "-c", "exit 42").returncode == 42
    assert podman.run(["--rm"], "false").returncode == 1


def test_run_tty_goes_through_a_pty(podman):
    result = podman.run(["--rm", "-t"], "sh", "-c", "tty; stty size")
    lines = result.stdout.replace("\r", "").splitlines()
    assert lines[0] == "/dev/pts/0", result
    assert any("--console-socket" in c for c in podman.sandbox.calls())


def test_network_none_has_only_loopback(podman):
    result = podman.run(["--rm", "--network", "none"], "cat", "/proc/net/dev")
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert interfaces == ["lo"], result


def test_default_network_joins_the_netns_podman_made(podman):
    result = podman.run(["--rm"], "ip", "-4", "-o", "addr", "show", "eth0")
    assert result.returncode == 0, result.stderr
    assert " inet 10.88." in result.stdout  # podman's default bridge network, set up in the netns it handed us


def test_detached_container_exec_stop_kill_pause_rm(podman):
    started = podman.run(["-d", "--name", "box"], "sh", "-c", "trap 'echo got-usr1' USR1; "
                         "while true; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    assert _status(podman, "box") == "running"

    out = podman("exec", "box", "sh", "-c", "echo from-exec $$; cat /proc/1/cmdline | tr '\\0' ' '; exit 5")
    assert out.returncode == 5, out.stderr
    assert out.stdout.startswith("from-exec ") and "while true" in out.stdout
    assert any(" exec " in c and "--process" in c and "--detach" in c for c in podman.sandbox.calls())

    tty = podman("exec", "-t", "box", "tty")
    assert tty.stdout.replace("\r", "").strip().startswith("/dev/pts/"), tty

    assert podman("pause", "box").returncode == 0
    assert _status(podman, "box") == "paused"
    assert podman("unpause", "box").returncode == 0
    assert _status(podman, "box") == "running"

    assert podman("kill", "--signal", "USR1", "box").returncode == 0
    assert wait_for(lambda: "got-usr1" in podman("logs", "box").stdout)

    stopped = podman("stop", "--time", "1", "box")
    assert stopped.returncode == 0, stopped.stderr
    assert _status(podman, "box") == "exited"

    assert podman("start", "box").returncode == 0
    assert podman("kill", "box").returncode == 0
    # The process is gone once podman says stopped (mrunc state: stopped); exited follows once conmon's cleanup
    # has run, which a loaded machine can delay past the wait.
    assert wait_for(lambda: _status(podman, "box") in ("stopped", "exited"))
    assert podman("rm", "-f", "box").returncode == 0
    assert podman("ps", "-a", "-q").stdout == ""


def test_failed_create_shows_mrunc_error(podman):
    # A hard RLIMIT_NOFILE above fs.nr_open is refused even to CAP_SYS_RESOURCE, so init's setrlimit op fails.
    above = int(open("/proc/sys/fs/nr_open").read()) + 1
    result = podman.run(["--rm", "--ulimit", f"nofile={above}:{above}"], "true")
    assert result.returncode != 0
    assert "mrunc: op " in result.stderr, result.stderr  # mrunc's one-line report, through conmon and --log
    assert "setrlimit (/process/rlimits/0)" in result.stderr


def _status(podman: Podman, name: str) -> str:
    result = podman("inspect", "--format", "json", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]["State"]["Status"]



def _mount_line(stdout: str, point: str) -> str:
    return next((line for line in stdout.splitlines() if line.split()[1:2] == [point]), "")


def test_read_only_gets_tmpfs_copies_of_run_tmp_and_var_tmp(podman):
    """--read-only: podman asks for tmpfs with tmpcopyup on /run, /tmp, /var/tmp; the rootfs stays read-only, the
    tmpfs are writable and /tmp keeps the image's mode (1777, copied with the directory)."""
    script = ("grep -E ' / | /run | /tmp | /var/tmp ' /proc/mounts; stat -c '%a' /tmp; touch /etc/x 2>&1; "
              "echo a > /tmp/a && echo a > /run/a && echo a > /var/tmp/a && echo written")
    started = podman.run(["-d", "--name", "ro", "--read-only"], "sleep", "100")
    assert started.returncode == 0, started.stderr
    result = podman("exec", "ro", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    for point in ("/run", "/tmp", "/var/tmp"):
        assert _mount_line(result.stdout, point).startswith(f"tmpfs {point} tmpfs rw,"), result.stdout
    assert " ro," in _mount_line(result.stdout, "/")
    assert "1777" in result.stdout.splitlines()
    assert "touch: /etc/x: Read-only file system" in result.stdout and result.stdout.endswith("written\n")
    # the plan mrunc ran: a tmpfs_copyup op for each (podman asked for tmpcopyup)
    create = next(c.split() for c in reversed(podman.sandbox.calls()) if " create " in c)
    root = create[create.index("--root") + 1] if "--root" in create else "/run/mrunc"  # in the sandbox's namespace
    plan = podman.sandbox.run("cat", f"{root}/{create[-1]}/plan.json")
    assert plan.returncode == 0, plan.stderr
    copied = [o["args"]["target"] for o in json.loads(plan.stdout)["ops"] if o["op"] == "tmpfs_copyup"]
    assert sorted(copied) == ["/run", "/tmp", "/var/tmp"]


def test_tmpfs_over_an_image_directory_holds_a_copy_of_it(podman):
    """--tmpfs /etc: the image's /etc (passwd, group) is there, in a tmpfs; writes stay in the tmpfs."""
    result = podman.run(["--rm", "--tmpfs", "/etc"], "sh", "-c",
                        "grep ' /etc ' /proc/mounts; grep -c '^root:' /etc/passwd; echo x >> /etc/group && echo ok")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tmpfs /etc tmpfs rw,") and lines[1:] == ["1", "ok"], result.stdout


def test_mount_type_tmpfs_over_bin_keeps_the_programs_and_their_symlinks(podman):
    """--mount type=tmpfs,destination=/bin: busybox and its applet symlinks are copied, so the shell still runs."""
    result = podman.run(["--rm", "--mount", "type=tmpfs,destination=/bin"], "/bin/sh", "-c",
                        "grep ' /bin ' /proc/mounts; readlink /bin/sh; ls /bin | wc -l")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tmpfs /bin tmpfs rw,") and lines[1] == "busybox", result.stdout
    assert int(lines[2]) > 100  # busybox's applets


def test_host_policy_refuses_privileged_with_the_reason_and_starts_a_compliant_container(podman, tmp_path):
    """The host's policy (mrunc/policy.py) where podman creates: restricted, with podman's own per-container files
    (hosts, resolv.conf, hostname: host paths it binds into every container) waived by a profile file."""
    profile = tmp_path / "podman.toml"
    profile.write_text('extends = "restricted"\n[waive]\n"host-path.any" = "podman binds its own per-container '
                       'files: /etc/hosts, /etc/resolv.conf, /etc/hostname, /run/.containerenv"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text(f'profile = "{profile}"\njournal = "{tmp_path / "journal"}"\n')
    with podman.sandbox.runtime_env(MRUNC_POLICY=str(policy)):
        refused = podman.run(["--rm", "--privileged"], "true")
        compliant = podman.run(["--rm", "--user", "1000:1000", "--cap-drop", "all", "--cap-add", "NET_BIND_SERVICE",
                                # podman 4.3 leaves /proc/asound unmasked, which the profile's proc.unmasked refuses
                                "--security-opt", "no-new-privileges", "--security-opt", "mask=/proc/asound",
                                "--cgroupns", "private", "--memory", "64m",
                                "--pids-limit", "64"], "sh", "-c", "echo compliant as $(id -u)")
    assert refused.returncode != 0
    assert f"policy {policy} refuses create of container" in refused.stderr, refused.stderr  # what the user sees
    assert "[high] caps.baseline: capabilities beyond the baseline set: CAP_AUDIT_CONTROL" in refused.stderr, \
        refused.stderr
    assert "[high] devices.host-node: host device node: " in refused.stderr and " more\n" in refused.stderr
    assert (compliant.returncode, compliant.stdout) == (0, "compliant as 1000\n"), compliant.stderr
    journal = [json.loads(line) for line in (tmp_path / "journal" / "journal.jsonl").read_text().splitlines()]
    assert [e["verdict"] for e in journal] == ["refused", "allowed"]


# What the baseline profile asks of podman's defaults: no CAP_NET_RAW, /proc/asound masked, a cgroup namespace.
BASELINE_OPTIONS = ["--cap-drop", "NET_RAW", "--security-opt", "mask=/proc/asound", "--cgroupns", "private"]


def test_an_approved_container_starts_again_and_again_and_any_other_plan_is_refused(podman, tmp_path):
    """Pinning under podman (mrunc/canonical.py): podman writes the mounts it adds (/etc/hosts, /etc/hostname,
    /dev/shm, /run/.containerenv) in a new order at every start, so the operator approves the canonical digest
    that a first, refused start shows and journals; every later start of that container is allowed, and a
    container with any other plan is refused with its digests and the reason. --network none: podman's bridge
    network is a new /run/netns path at every start, which no digest may leave out."""
    journal = tmp_path / "journal"
    policy = tmp_path / "policy.toml"

    def approve(*digests: str) -> None:
        policy.write_text(f'profile = "baseline"\njournal = "{journal}"\napproved = {json.dumps(list(digests))}\n')

    approve("sha256:" + "0" * 64)  # nothing approved yet
    created = podman("create", "--pull=never", f"--cgroup-parent={podman.cgroup_parent}", "--name", "pinned",
                     "--network", "none", *BASELINE_OPTIONS, IMAGE, "sh", "-c", "echo pinned")
    assert created.returncode == 0, created.stderr
    with podman.sandbox.runtime_env(MRUNC_POLICY=str(policy)):
        refused = podman("start", "--attach", "pinned")
        first = _journal(journal)[-1]
        assert refused.returncode != 0 and first["verdict"] == "refused"
        assert (f"plan {first['plan']} (canonical {first['canonical']}) is not among the policy's approved plans"
                in refused.stderr), refused.stderr  # what the podman user sees: both digests, and why
        assert "refuses create of container" in refused.stderr and first["reasons"] == [
            f"plan {first['plan']} (canonical {first['canonical']}) is not among the policy's approved plans"]

        approve(first["canonical"])  # the operator reviews the kept plan (first["plan_file"]) and approves it
        starts = [podman("start", "--attach", "pinned") for _ in range(4)]
        other = podman.run(["--rm", "--network", "none", *BASELINE_OPTIONS], "sh", "-c", "echo pinned")
    assert [(s.returncode, s.stdout) for s in starts] == [(0, "pinned\n")] * 4, [s.stderr for s in starts]
    allowed = _journal(journal)[1:5]
    assert [(e["verdict"], e["id"], e["canonical"]) for e in allowed] == [("allowed", first["id"],
                                                                           first["canonical"])] * 4
    for entry in [first, *allowed]:  # each start's plan is kept by its own digest, its canonical one recomputable
        text = open(entry["plan_file"], "rb").read()
        assert "sha256:" + hashlib.sha256(text).hexdigest() == entry["plan"]
        assert canonical.digest(json.loads(text)) == first["canonical"]

    # Another container, same image and options: its own id is in its paths, so its plan is another one.
    last = _journal(journal)[-1]
    assert other.returncode != 0 and last["verdict"] == "refused" and last["id"] != first["id"]
    assert (f"plan {last['plan']} (canonical {last['canonical']}) is not among the policy's approved plans"
            in other.stderr), other.stderr


def _journal(journal) -> list[dict]:
    return [json.loads(line) for line in (journal / "journal.jsonl").read_text().splitlines()]


def test_on_the_bridge_network_each_start_is_a_new_canonical_digest_for_its_new_netns(podman, tmp_path):
    """Why the approved container above has --network none: on podman's bridge network each start joins a network
    namespace podman made for it, at a new /run/netns path, which the canonical digest keeps (a path to the host's
    namespace would be another one). Two starts: two canonical digests, and nothing else tells their plans apart."""
    journal = tmp_path / "journal"
    policy = tmp_path / "policy.toml"
    policy.write_text(f'profile = "baseline"\njournal = "{journal}"\n')  # journal only
    created = podman("create", "--pull=never", f"--cgroup-parent={podman.cgroup_parent}", "--name", "bridged",
                     *BASELINE_OPTIONS, IMAGE, "true")
    assert created.returncode == 0, created.stderr
    with podman.sandbox.runtime_env(MRUNC_POLICY=str(policy)):
        starts = [podman("start", "--attach", "bridged") for _ in range(2)]
    assert [s.returncode for s in starts] == [0, 0], [s.stderr for s in starts]
    first, second = _journal(journal)
    assert first["canonical"] != second["canonical"]
    forms = [canonical.canonical(json.loads(open(e["plan_file"]).read())) for e in (first, second)]
    joined = [[o["args"]["path"] for o in form["ops"] if o["op"] == "setns" and o["args"]["type"] == "network"]
              for form in forms]
    assert all(len(paths) == 1 and paths[0].startswith("/run/netns/") for paths in joined) and joined[0] != joined[1]
    for form in forms:
        for o in form["ops"]:
            if o["op"] == "setns" and o["args"]["type"] == "network":
                o["args"]["path"] = "NETNS"
    assert forms[0] == forms[1]

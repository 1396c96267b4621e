"""Real containers: mounts and their options, /dev (nodes, pts, ptmx, shm), masked and read-only paths, sysctl."""

import pytest

from tests.conftest import base_config, run_config


def _writable_root(args: list[str]) -> dict:
    config = base_config(args)
    config["root"]["readonly"] = False
    return config


def _mountinfo(stdout: str, mount_point: str) -> list[str]:
    """The mountinfo fields of the last mount at mount_point, from `cat /proc/self/mountinfo` output."""
    lines = [line.split() for line in stdout.splitlines() if len(line.split()) > 4]
    return [fields for fields in lines if fields[4] == mount_point][-1]


def test_bind_rbind_and_readonly_bind(bundle, tmp_path):
    source = tmp_path / "share"
    source.mkdir()
    (source / "file").write_text("from host\n")
    rootfs = str(bundle.path / "rootfs")
    script = "cat /b/file; ls /r/sub; ls /ro/sub | wc -l; cat /ro/file; touch /ro/x 2>&1; touch /b/y && echo rw"
    config = _writable_root(["sh", "-c", script])
    config["mounts"] += [
        {"destination": "/b", "type": "bind", "source": str(source), "options": ["bind"]},
        # a tmpfs on /b/sub (made inside the container), then binds of /b: only rbind carries it along
        {"destination": "/b/sub", "type": "tmpfs", "source": "tmpfs", "options": []},
        {"destination": "/b/sub/marker", "type": "tmpfs", "source": "tmpfs", "options": []},
        {"destination": "/r", "source": f"{rootfs}/b", "options": ["rbind"]},
        {"destination": "/ro", "source": f"{rootfs}/b", "options": ["bind", "ro"]},
    ]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["from host", "marker", "0", "from host",
                                          "touch: /ro/x: Read-only file system", "rw"], result.stderr
    assert (source / "y").exists()  # the bind is the host directory itself
    (source / "y").unlink()


def test_nosuid_nodev_noexec_and_tmpfs_data(bundle):
    script = ("cat /proc/self/mountinfo; stat -c '%a' /t; cp /bin/busybox /t/bb; /t/bb true 2>&1 || echo no-exec;"
              "dd if=/dev/zero of=/t/big bs=1k count=5000 2>&1 | grep -o 'No space left on device'")
    config = _writable_root(["sh", "-c", script])
    config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "noexec", "mode=1730", "size=4m"]})
    result = run_config(bundle, config)
    fields = _mountinfo(result.stdout, "/t")
    assert {"nosuid", "nodev", "noexec"} <= set(fields[5].split(",")), fields
    super_options = fields[-1].split(",")
    assert "size=4096k" in super_options and "mode=1730" in super_options, fields
    mode, exec_error, no_exec, full = result.stdout.splitlines()[-4:]
    assert mode == "1730"
    assert "Permission denied" in exec_error and no_exec == "no-exec"
    assert full == "No space left on device"  # size=4m is enforced


def test_mount_propagation_options(bundle):
    config = _writable_root(["cat", "/proc/self/mountinfo"])
    config["mounts"] += [
        {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
        {"destination": "/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]},
        {"destination": "/private", "type": "tmpfs", "source": "tmpfs", "options": ["private"]},
    ]
    result = run_config(bundle, config)
    assert any(f.startswith("shared:") for f in _mountinfo(result.stdout, "/shared")[6:]), result.stderr
    assert "unbindable" in _mountinfo(result.stdout, "/unbindable")[6:]
    private = _mountinfo(result.stdout, "/private")
    assert private[6] == "-", private  # no optional fields: private
    root = _mountinfo(result.stdout, "/")
    assert not any(f.startswith(("shared:", "master:")) for f in root[6:root.index("-")]), root


@pytest.mark.parametrize("propagation", ["shared", "slave", "private", "unbindable"])
def test_rootfs_propagation_is_the_container_roots_own(bundle, propagation):
    """config-linux.md: rootfsPropagation sets the rootfs mount's propagation. Seen from inside: a mount made under
    / after / was bound elsewhere shows through the bind only if / is shared; binding / fails if it is unbindable.
    The container needs CAP_SYS_ADMIN (and no seccomp filter) to try."""
    script = ("mkdir -p /t /m /src && touch /src/file && "
              "if mount --rbind / /t; then mount --bind /src /m && "
              "{ test -e /t/m/file && echo exposed || echo hidden; }; else echo bind-refused; fi; "
              "awk '$5 == \"/\"' /proc/self/mountinfo")
    config = _writable_root(["sh", "-c", script])
    config["linux"]["rootfsPropagation"] = propagation
    config["linux"].pop("seccomp", None)
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    first, root = result.stdout.splitlines()
    assert first == {"shared": "exposed", "unbindable": "bind-refused"}.get(propagation, "hidden"), result.stdout
    optional = root.split()[6:root.split().index("-")]
    assert any(f.startswith("shared:") for f in optional) == (propagation == "shared"), root
    assert ("unbindable" in optional) == (propagation == "unbindable"), root
    if propagation == "unbindable":
        assert "Invalid argument" in result.stderr, result.stderr  # EINVAL: an unbindable mount cannot be bound


def test_linux_devices_get_their_type_numbers_mode_and_owner(bundle):
    config = base_config(["stat", "-c", "%n %F %t:%T %a %u:%g", "/dev/cov-null", "/dev/cov/fifo", "/dev/null"])
    config["linux"]["devices"] = [
        {"path": "/dev/cov-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 12, "gid": 34},
        {"path": "/dev/cov/fifo", "type": "p", "fileMode": 0o600, "uid": 5, "gid": 6},
    ]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == [
        "/dev/cov-null character special file 1:3 640 12:34",
        "/dev/cov/fifo fifo 0:0 600 5:6",
        "/dev/null character special file 1:3 666 0:0",  # a default node is still made
    ], result.stderr


def test_a_device_file_mode_with_its_type_bits_as_podman_sends_it_is_taken(bundle):
    """podman --privileged and --device send fileMode as Go's os.FileMode of the host's node: 0o20640 for a
    character device (runc takes it). The permission bits make the node; type bits of another type are refused."""
    config = base_config(["stat", "-c", "%n %F %t:%T %a", "/dev/cov-null", "/dev/cov-fifo"])
    config["linux"]["devices"] = [{"path": "/dev/cov-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o20640},
                                  {"path": "/dev/cov-fifo", "type": "p", "fileMode": 0o10600}]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["/dev/cov-null character special file 1:3 640",
                                          "/dev/cov-fifo fifo 0:0 600"], result.stderr
    config["linux"]["devices"][0]["fileMode"] = 0o60640  # a block device's bits on a character device
    refused = run_config(bundle, config)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "/linux/devices/0/fileMode: its file type bits (0o60000) are not those of type 'c' (0o20000)" in \
        refused.stderr


def test_default_dev_nodes_symlinks_pts_ptmx_and_shm(bundle):
    script = ("for n in null zero full tty urandom random; do stat -c '%n %t:%T %a' /dev/$n; done;"
              "for l in ptmx fd stdin; do readlink /dev/$l; done; exec 3<>/dev/ptmx; ls /dev/pts;"
              "echo shm > /dev/shm/f && cat /dev/shm/f; stat -c %a /dev/shm; cat /proc/self/mountinfo")
    result = run_config(bundle, base_config(["sh", "-c", script]))
    lines = result.stdout.splitlines()
    assert lines[:6] == ["/dev/null 1:3 666", "/dev/zero 1:5 666", "/dev/full 1:7 666", "/dev/tty 5:0 666",
                         "/dev/urandom 1:9 666", "/dev/random 1:8 666"], result.stderr
    assert lines[6:9] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]
    assert lines[9:11] == ["0", "ptmx"]  # opening ptmx made a pty in the container's own devpts instance
    assert lines[11:13] == ["shm", "1777"]
    pts = _mountinfo(result.stdout, "/dev/pts")
    assert pts[pts.index("-") + 1] == "devpts" and "ptmxmode=666" in pts[-1], pts
    shm = _mountinfo(result.stdout, "/dev/shm")
    assert shm[shm.index("-") + 1] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= set(shm[5].split(","))


def test_masked_paths_hide_files_and_directories(bundle):
    rootfs = bundle.path / "rootfs"
    (rootfs / "secret-dir").mkdir()
    (rootfs / "secret-dir" / "inside").write_text("hidden")
    (rootfs / "secret-file").write_text("hidden")
    script = ("cat /secret-file | wc -c; ls /secret-dir | wc -l; touch /secret-dir/x 2>&1;"
              "stat -c '%t:%T' /secret-file; cat /proc/kcore | wc -c; ls /sys/firmware | wc -l")
    config = _writable_root(["sh", "-c", script])
    config["linux"]["maskedPaths"] += ["/secret-dir", "/secret-file", "/does-not-exist"]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["0", "0", "touch: /secret-dir/x: Read-only file system", "1:3", "0", "0"], \
        result.stderr


def test_readonly_paths_refuse_writes_and_leave_the_rest_writable(bundle):
    (bundle.path / "rootfs" / "data" / "sub").mkdir(parents=True)
    script = "touch /data/sub/x 2>&1; touch /tmp/y && echo tmp-writable; echo x > /proc/sys/kernel/domainname"
    config = _writable_root(["sh", "-c", script])
    config["linux"]["readonlyPaths"] += ["/data", "/does-not-exist"]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["touch: /data/sub/x: Read-only file system", "tmp-writable"], result.stderr
    assert "Read-only file system" in result.stderr  # /proc/sys, from the runc spec's readonlyPaths


def test_sysctls_are_set_in_the_containers_namespaces(bundle):
    host_forward = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    host_shmmni = open("/proc/sys/kernel/shmmni").read().strip()
    config = base_config(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni"])
    value = "1" if host_forward == "0" else "0"
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": value, "kernel.shmmni": "1234"}
    result = run_config(bundle, config)
    assert result.stdout.split() == [value, "1234"], result.stderr
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == host_forward  # host untouched
    assert open("/proc/sys/kernel/shmmni").read().strip() == host_shmmni


def test_mount_types_and_atime_options(bundle, tmp_path):
    host_file = tmp_path / "hostname-file"
    host_file.write_text("bound file\n")
    config = _writable_root(["sh", "-c", "cat /f; { echo x > /f; } 2>&1; ls /s/kernel >/dev/null && echo sysfs; "
                                         "cat /proc/self/mountinfo"])
    config["mounts"] += [
        {"destination": "/s", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]},
        {"destination": "/mq", "type": "mqueue", "source": "mqueue", "options": ["nodev"]},
        {"destination": "/noatime", "type": "tmpfs", "source": "tmpfs", "options": ["noatime", "ro"]},
        {"destination": "/strict", "type": "tmpfs", "source": "tmpfs", "options": ["strictatime", "nodiratime"]},
        {"destination": "/f", "type": "bind", "source": str(host_file), "options": ["rbind", "ro"]},
    ]
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0] == "bound file" and "Read-only file system" in lines[1] and lines[2] == "sysfs", result.stderr

    def options(point: str) -> tuple[str, set[str]]:
        fields = _mountinfo(result.stdout, point)
        return fields[fields.index("-") + 1], set(fields[5].split(","))

    assert options("/s")[0] == "sysfs" and {"ro", "nosuid"} <= options("/s")[1]
    assert options("/mq")[0] == "mqueue" and "nodev" in options("/mq")[1]
    assert {"ro", "noatime"} <= options("/noatime")[1]
    assert "nodiratime" in options("/strict")[1] and "relatime" not in options("/strict")[1]
    assert "ro" in options("/f")[1]

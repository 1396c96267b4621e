"""The bundles the benchmark runs: a busybox rootfs and `runc spec` configs, plain, hardened and scaled."""

import json
import os
import shutil
import subprocess
from pathlib import Path

# The reference data next to the checkout (as tests/conftest.py finds it).
REFERENCE = Path(__file__).resolve().parents[1] / "reference"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CGROUP_PARENT = "mrunc-bench"  # run.py sets one per run: benchmarks may run side by side

# Left out of the hardened allowlist, as Docker's default profile leaves them out: they change the host or
# the kernel, break out of namespaces, or read other processes' memory.
PRIVILEGED_SYSCALLS = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "migrate_pages", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "swapoff", "swapon", "sysfs", "_sysctl", "umount2", "unshare",
    "uselib", "userfaultfd", "ustat", "vhangup", "afs_syscall", "tuxcall", "security", "putpmsg", "getpmsg",
    "vserver", "epoll_ctl_old", "epoll_wait_old", "set_thread_area", "get_thread_area", "modify_ldt",
}
KEPT_CAPS = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]


def make_rootfs(root: Path) -> None:
    """busybox-static with its applets as relative symlinks; /bin/true is the workload."""
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "mnt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(root / "bin" / "busybox"), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")


def runc_spec(scratch: Path) -> dict:
    """The config `runc spec` writes (the reference copy when runc is missing)."""
    if shutil.which("runc"):
        scratch.mkdir(parents=True, exist_ok=True)
        subprocess.run(["runc", "spec", "--bundle", str(scratch)], check=True)
        return json.loads((scratch / "config.json").read_text())
    return json.loads((REFERENCE / "configs" / "runc-spec.json").read_text())


def plain(spec: dict, name: str) -> dict:
    config = json.loads(json.dumps(spec))
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{name}"
    return config


def allowlist() -> list[str]:
    """Every x86_64 syscall libseccomp knows, minus the privileged ones: a Docker-default-like allowlist."""
    import pyseccomp as sc

    names = set()
    for number in range(512):
        try:
            names.add(sc.resolve_syscall(sc.Arch.NATIVE, number).decode())
        except ValueError:  # no syscall has this number
            pass
    return sorted(names - PRIVILEGED_SYSCALLS)


def hardened(spec: dict, name: str) -> dict:
    """Seccomp allowlist, all caps but two dropped, no_new_privs, read-only root, masked and read-only
    paths (the spec's), memory and pids limits."""
    config = plain(spec, name)
    config["process"]["noNewPrivileges"] = True
    config["process"]["capabilities"] = {kind: list(KEPT_CAPS) for kind in ("bounding", "effective", "permitted")}
    config["root"]["readonly"] = True
    linux = config["linux"]
    linux["resources"]["memory"] = {"limit": 256 * 1024 * 1024}
    linux["resources"]["pids"] = {"limit": 64}
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": allowlist(), "action": "SCMP_ACT_ALLOW"}],
    }
    return config


def with_mounts(spec: dict, name: str, count: int) -> dict:
    """`count` small tmpfs mounts at /mnt/m0.. on top of the plain config."""
    config = plain(spec, name)
    config["mounts"] += [{"destination": f"/mnt/m{i}", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "size=64k"]} for i in range(count)]
    return config


def with_seccomp_rules(spec: dict, name: str, count: int) -> dict:
    """A profile of `count` rules: each refuses one syscall for one argument value no process here passes,
    spread over the allowlist's syscalls, so /bin/true still runs and every rule reaches the filter."""
    config = plain(spec, name)
    names = [n for n in allowlist() if n not in ("execve", "exit", "exit_group")]
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": [names[i % len(names)]], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0x7EADBEEF00 + i, "op": "SCMP_CMP_EQ"}]}
                     for i in range(count)],
    }
    return config


def write_bundle(bundles: Path, rootfs: Path, name: str, config: dict) -> Path:
    """A bundle dir holding config.json and a hard-linked copy of the rootfs (mount points get created in it)."""
    bundle = bundles / name
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True, copy_function=os.link)
    config["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle

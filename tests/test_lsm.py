"""LSM fields, as runc treats them: apparmorProfile and selinuxLabel are init ops that write the label the next
execve takes, linux.mountLabel is a context= option of the filesystems made for the container. This host has
no LSM, so the kernel refuses each and the container fails at that op, leaving nothing behind (as runc fails)."""

import json
import os

from mrunc.compiler import order
from mrunc.compiler.emit import Emitter
from tests.conftest import base_config, mrunc, run_config
from tests.review_cases import CONFIGS

APPARMOR_ON = os.path.exists("/sys/kernel/security/apparmor")
SELINUX_ON = os.path.exists("/sys/fs/selinux/enforce")
LABEL = "system_u:object_r:container_file_t:s0:c1,c2"


def _listing(bundle, config: dict) -> str:
    bundle.write(config)
    result = mrunc("compile", "--format", "text", str(bundle.config_path))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fails_at(bundle, config: dict, failure: str) -> str:
    """The container fails at the op named by `failure` (op, source, args, errno), before its process runs."""
    result = run_config(bundle, config)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert failure in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (bundle.state_root / bundle.id).exists()
    return result.stderr


def test_apparmor_profile_is_an_op_the_kernel_refuses_without_apparmor(bundle):
    config = base_config(["echo", "ran"])
    config["process"]["apparmorProfile"] = "mrunc-test-no-such-profile"
    assert "apparmor_profile    name=mrunc-test-no-such-profile  # /process/apparmorProfile" in _listing(bundle, config)
    errno = "ENOENT" if APPARMOR_ON else "EINVAL"  # with AppArmor: no such profile is loaded
    _fails_at(bundle, config, f"[init] apparmor_profile (/process/apparmorProfile): name=mrunc-test-no-such-profile: "
                              f"{errno}")


def test_selinux_label_is_an_op_the_kernel_refuses_without_selinux(bundle):
    config = base_config(["echo", "ran"])
    config["process"]["selinuxLabel"] = "not-a-context" if SELINUX_ON else LABEL
    label = config["process"]["selinuxLabel"]
    assert f"selinux_exec_label  label={label}  # /process/selinuxLabel" in _listing(bundle, config)
    _fails_at(bundle, config, f"[init] selinux_exec_label (/process/selinuxLabel): label={label}: EINVAL")


def test_mount_label_is_a_context_option_the_kernel_refuses_without_selinux(bundle):
    config = base_config(["echo", "ran"])
    config["linux"]["mountLabel"] = LABEL if not SELINUX_ON else "not-a-context"
    listing = _listing(bundle, config)
    proc, dev = (next(line for line in listing.splitlines() if line.endswith(f"# /mounts/{i}")) for i in (0, 1))
    assert "context=" not in proc and f'size=65536k,context="{config["linux"]["mountLabel"][:10]}' in dev
    assert "note: /linux/mountLabel: not given to the empty tmpfs over a masked directory" in listing
    failure = _fails_at(bundle, config, "[init] mount (/mounts/1): source=tmpfs target=/dev fstype=tmpfs")
    assert "create=ordinary_dir: EINVAL (Invalid argument" in failure, failure


def test_exec_into_a_container_gets_the_same_lsm_ops():
    emit = Emitter()
    process = {"args": ["true"], "apparmorProfile": "p", "selinuxLabel": "l"}
    order.lower_user_process(emit, process, None, "/container/seccomp", 0, lambda: None)
    assert [(o["op"], o["args"]) for o in emit.ops[:2]] == [("apparmor_profile", {"name": "p"}),
                                                           ("selinux_exec_label", {"label": "l"})]


def test_audit_reports_an_unconfined_apparmor_profile(tmp_path):
    config = json.loads(CONFIGS["hardened"].read_text())  # meets the baseline
    for profile, findings in (("container-default", []), ("unconfined", [["apparmor.unconfined",
                                                                           "/process/apparmorProfile"]])):
        config["process"]["apparmorProfile"] = profile
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        result = mrunc("audit", str(path), "--format", "json")
        assert result.returncode == (1 if findings else 0), result.stdout + result.stderr
        assert [[f["control"], f["pointer"]] for f in json.loads(result.stdout)["findings"]] == findings


def test_sh_rendering_gives_the_labels_to_setpriv(bundle):
    config = base_config(["true"])
    config["process"].update(apparmorProfile="mrunc-test", selinuxLabel=LABEL)
    bundle.write(config)
    script = mrunc("compile", "--format", "sh", str(bundle.config_path)).stdout
    # the host's setpriv, copied before pivot_root and run through the copied loader (render_sh: $H $T/...)
    assert f"exec $H $T/setpriv --apparmor-profile=mrunc-test --selinux-label={LABEL} --bounding-set=" in script
    assert "sh cannot express" not in script  # neither op is a gap

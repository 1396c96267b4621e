"""The host policy (mrunc/policy.py), applied where containers are created: `create`, `run` and `exec ID` refuse
what the policy's profile or its approved digests do not allow, before anything is made, with the findings in the
error and the --log file; each create/run is journaled with its plan kept by digest; a policy anyone but root could
write is ignored; a broken policy refuses everything. Real containers throughout (the podman case is in
tests/test_podman.py)."""

import hashlib
import json
import os

import pytest

from tests.conftest import REFERENCE, base_config, mrunc, run_config
from tests.hardened import hardened_config, skip_unless_hardened
from tests.lifecycle_helpers import running

SUITE_PROFILE = json.loads((REFERENCE / "runtime-tools" / "default-seccomp.json").read_text())


def compliant(args: list[str]) -> dict:
    """What the restricted profile allows: a user namespace, uid 1000, NET_BIND_SERVICE alone, no_new_privs, a
    deny-by-default filter, the default masks, memory and pids limits. Skips a test on a host that cannot run it."""
    skip_unless_hardened()
    config = hardened_config(args)
    config["process"]["capabilities"] = {kind: ["CAP_NET_BIND_SERVICE"] for kind in ("bounding", "effective",
                                                                                     "permitted")}
    config["process"]["noNewPrivileges"] = True
    config["linux"]["seccomp"] = SUITE_PROFILE
    return config


def write_policy(tmp_path, **fields) -> tuple[str, str]:
    """A policy file (TOML) and its journal dir, both the test's own."""
    journal = tmp_path / "journal"
    fields.setdefault("journal", str(journal))
    path = tmp_path / "policy.toml"
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items()))
    path.chmod(0o644)
    return str(path), str(journal)


def journal_of(journal: str) -> list[dict]:
    with open(os.path.join(journal, "journal.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_restricted_policy_refuses_a_root_container_before_anything_is_made(bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="restricted")
    log = tmp_path / "mrunc.log"
    bundle.write(base_config(["echo", "ran"]))
    result = mrunc("--root", str(bundle.state_root), "--log", str(log), "--log-format", "json", "run", "--bundle",
                   str(bundle.path), bundle.id, env={"MRUNC_POLICY": policy})
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert f"policy {policy} refuses run of container '{bundle.id}' (profile restricted" in result.stderr
    assert "[high] process.root-without-userns: runs as root without a user namespace" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (bundle.state_root / bundle.id).exists()
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged[-1]["level"] == "error" and "process.root-without-userns" in logged[-1]["msg"]
    entry, = journal_of(journal)
    assert (entry["command"], entry["id"], entry["verdict"]) == ("run", bundle.id, "refused")
    assert entry["bundle"] == str(bundle.path) and len(entry["config_sha256"]) == 64
    with open(entry["plan_file"]) as f:
        stored = f.read()
    assert entry["plan"] == "sha256:" + hashlib.sha256(stored.encode()).hexdigest()
    assert os.stat(entry["plan_file"]).st_mode & 0o777 == 0o600


def test_a_compliant_container_runs_under_the_restricted_policy_and_is_journaled(userns_bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="restricted")
    result = run_config(userns_bundle, compliant(["sh", "-c", "echo ran as $(id -u)"]), env={"MRUNC_POLICY": policy})
    assert (result.returncode, result.stdout) == (0, "ran as 1000\n"), result.stderr
    assert [e["verdict"] for e in journal_of(journal)] == ["allowed"]


def test_the_global_option_names_the_policy_too(bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="restricted")
    bundle.write(base_config(["true"]))
    result = mrunc("--root", str(bundle.state_root), "--policy", policy, "run", "--bundle", str(bundle.path),
                   bundle.id)
    assert result.returncode == 1 and "process.root-without-userns" in result.stderr
    assert journal_of(journal)[0]["verdict"] == "refused"


def test_only_approved_plans_start_and_the_journal_gives_the_digest_to_approve(bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="baseline", approved=["sha256:" + "0" * 64])
    config = base_config(["echo", "approved"])
    config["linux"]["seccomp"] = SUITE_PROFILE
    config["linux"]["namespaces"].append({"type": "cgroup"})  # what baseline asks of runc's default config
    first = run_config(bundle, config, env={"MRUNC_POLICY": policy})
    assert first.returncode == 1 and "is not among the policy's approved plans" in first.stderr
    digest = journal_of(journal)[0]["plan"]  # the operator reviews the stored plan, then approves it
    write_policy(tmp_path, profile="baseline", approved=[digest])
    second = run_config(bundle, config, env={"MRUNC_POLICY": policy})
    assert (second.returncode, second.stdout) == (0, "approved\n"), second.stderr
    assert [e["verdict"] for e in journal_of(journal)] == ["refused", "allowed"]


def test_a_policy_others_may_write_is_ignored_with_a_warning(bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="restricted")
    os.chmod(policy, 0o664)
    result = run_config(bundle, base_config(["echo", "ran"]), env={"MRUNC_POLICY": policy})
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr
    assert f"warning: policy {policy}: ignored: it must be owned by root and writable by no one else" in result.stderr
    assert not os.path.exists(journal)


def test_a_broken_policy_refuses_everything_naming_the_field(bundle, tmp_path):
    policy, _ = write_policy(tmp_path, profile="restricted", approve=["typo"])
    result = run_config(bundle, base_config(["echo", "ran"]), env={"MRUNC_POLICY": policy})
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert f"policy {policy}: /approve: unknown key; allowed: profile, approved, journal" in result.stderr
    missing = run_config(bundle, base_config(["true"]), env={"MRUNC_POLICY": str(tmp_path / "nope.toml")})
    assert missing.returncode == 1 and "nope.toml: no such file" in missing.stderr


def test_exec_into_a_container_is_judged_on_the_process_it_adds(userns_bundle, tmp_path):
    policy, journal = write_policy(tmp_path, profile="restricted")
    config = compliant(["sh", "-c", "while true; do sleep 0.1; done"])
    with running(userns_bundle, tmp_path, config) as lc:
        env = {"MRUNC_POLICY": policy}
        as_root = lc("exec", "--user", "0:0", userns_bundle.id, "--", "true", env=env)
        assert as_root.returncode == 0, as_root.stderr  # root of a user namespace: not the host's
        caps = tmp_path / "process.json"
        process = dict(config["process"], args=["true"], capabilities={k: ["CAP_SYS_ADMIN"] for k in
                                                                      ("bounding", "effective", "permitted")})
        caps.write_text(json.dumps(process))
        refused = lc("exec", "--process", str(caps), userns_bundle.id, env=env)
        assert refused.returncode == 1, refused.stderr
        assert f"refuses exec of container '{userns_bundle.id}'" in refused.stderr
        assert "caps.baseline" in refused.stderr and "proc.unmasked" not in refused.stderr
    assert [(e["command"], e["verdict"]) for e in journal_of(journal)] == [("exec", "allowed"), ("exec", "refused")]


def baseline_config(args: list[str], mounts: list[dict]) -> dict:
    config = base_config(args)
    config["linux"]["seccomp"] = SUITE_PROFILE
    config["linux"]["namespaces"].append({"type": "cgroup"})  # what baseline asks of runc's default config
    config["mounts"] += mounts
    return config


def file_bind(source, destination: str) -> dict:
    return {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}


def test_mounts_listed_in_another_order_that_cannot_matter_keep_the_approved_canonical_digest(bundle, tmp_path):
    """podman's case (tests/test_podman.py) on a bundle: the approved canonical digest of one order of two binds
    lets the other order start, though its plan and config digests differ."""
    (tmp_path / "a").write_text("a\n")
    (tmp_path / "b").write_text("b\n")
    binds = [file_bind(tmp_path / "a", "/etc/a"), file_bind(tmp_path / "b", "/srv/b")]
    policy, journal = write_policy(tmp_path, profile="baseline", approved=["sha256:" + "0" * 64])
    listed = run_config(bundle, baseline_config(["cat", "/etc/a", "/srv/b"], binds), env={"MRUNC_POLICY": policy})
    assert listed.returncode == 1 and "is not among the policy's approved plans" in listed.stderr
    write_policy(tmp_path, profile="baseline", approved=[journal_of(journal)[0]["canonical"]])
    swapped = run_config(bundle, baseline_config(["cat", "/etc/a", "/srv/b"], binds[::-1]),
                         env={"MRUNC_POLICY": policy})
    assert (swapped.returncode, swapped.stdout) == (0, "a\nb\n"), swapped.stderr
    first, second = journal_of(journal)
    assert second["verdict"] == "allowed" and second["canonical"] == first["canonical"]
    assert second["plan"] != first["plan"] and second["config_sha256"] != first["config_sha256"]


@pytest.mark.parametrize("destination", ["/mnt/f", "/opt/link/f"], ids=["under-the-tmpfs", "through-a-symlink"])
def test_mounts_whose_order_matters_keep_it_in_the_canonical_digest(bundle, tmp_path, destination):
    """A file bound under a tmpfs (lexically, or through /opt/link -> /mnt in the rootfs) is seen only when the
    tmpfs comes first: the approved order runs and shows it; the other order is another canonical digest, refused."""
    (bundle.path / "rootfs" / "opt").mkdir()
    (bundle.path / "rootfs" / "opt" / "link").symlink_to("/mnt")
    (tmp_path / "f").write_text("seen\n")
    mounts = [{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
              file_bind(tmp_path / "f", destination)]
    args = ["sh", "-c", "cat /mnt/f || echo hidden"]
    policy, journal = write_policy(tmp_path, profile="baseline")  # journal only: the operator learns the digest
    learned = run_config(bundle, baseline_config(args, mounts), env={"MRUNC_POLICY": policy})
    assert (learned.returncode, learned.stdout) == (0, "seen\n"), learned.stderr
    write_policy(tmp_path, profile="baseline", approved=[journal_of(journal)[0]["canonical"]])
    again = run_config(bundle, baseline_config(args, mounts), env={"MRUNC_POLICY": policy})
    assert (again.returncode, again.stdout) == (0, "seen\n"), again.stderr
    swapped = run_config(bundle, baseline_config(args, mounts[::-1]), env={"MRUNC_POLICY": policy})
    assert (swapped.returncode, swapped.stdout) == (1, ""), swapped.stderr
    assert "is not among the policy's approved plans" in swapped.stderr
    approved = journal_of(journal)[0]["canonical"]
    assert [(e["verdict"], e["canonical"] == approved) for e in journal_of(journal)] == [
        ("allowed", True), ("allowed", True), ("refused", False)]
    write_policy(tmp_path, profile="baseline")  # and it does what the digest keeps apart: the file is hidden
    hidden = run_config(bundle, baseline_config(args, mounts[::-1]), env={"MRUNC_POLICY": policy})
    assert (hidden.returncode, hidden.stdout) == (0, "hidden\n"), hidden.stderr

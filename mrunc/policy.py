"""The host's policy: what `create`, `run` and `exec ID` let start on this host, whoever calls them (podman,
containerd, a person). A policy file, JSON or TOML (by its name's suffix):

    profile = "restricted"               # baseline, restricted, or a profile file (mrunc audit --profile)
    approved = ["sha256:..."]            # optional: only plans with these digests (or canonical ones) start
    journal = "/var/lib/mrunc/journal"   # optional: where each create/run is recorded (this is the default)

It is read from /etc/mrunc/policy.toml, or the file `--policy FILE` (a global option) or MRUNC_POLICY names, and
only when root owns it and neither group nor others may write it: anyone else's file is ignored with a warning. A
container the policy refuses is refused before anything is made, with the findings in the error (stderr and the
`--log` file engines read). Every create and run, started or refused, appends one JSON line to the journal's
`journal.jsonl` (time, id, bundle, config, plan and canonical digests (mrunc/canonical.py), verdict) and keeps the
plan in `plans/sha256-HEX.json`, so `mrunc diff` can compare what ran yesterday with what runs today. Only the
audit's modules are imported here, and only when a policy is in force: no jsonschema, no jinja2 on an engine's
create.
"""

import os

DEFAULT_PATH = "/etc/mrunc/policy.toml"
ENV = "MRUNC_POLICY"
DEFAULT_JOURNAL = "/var/lib/mrunc/journal"
KEYS = ("profile", "approved", "journal")
# What an exec into a running container can change: the process's own privileges. Mounts, namespaces and cgroups
# are the container's, judged when it was created.
EXEC_CONTROL_PREFIXES = ("caps.", "seccomp.", "process.", "apparmor.")


class PolicyError(Exception):
    """A policy file in force that cannot be used: the message names the file and field."""


class Policy:
    def __init__(self, path: str, profile: object, approved: list[str], journal: str) -> None:
        self.path, self.profile, self.approved, self.journal = path, profile, approved, journal


def load(option: str = "") -> "Policy | None":
    """The policy in force, or None. A file named explicitly (option, environment) must exist."""
    path = option or os.environ.get(ENV) or DEFAULT_PATH
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if path == DEFAULT_PATH:
            return None
        raise PolicyError(f"policy {path}: no such file") from None
    except OSError as e:
        raise PolicyError(f"policy {path}: {e.strerror}") from None
    if st.st_uid != 0 or st.st_mode & 0o022:
        from mrunc import log

        log.warning(f"policy {path}: ignored: it must be owned by root and writable by no one else "
                    f"(owner uid {st.st_uid}, mode {st.st_mode & 0o777:o})")
        return None
    return _parse(path)


def _parse(path: str) -> Policy:
    from mrunc.review import profiles

    with open(path, "rb") as f:
        raw = f.read()
    try:
        if path.endswith(".toml"):
            import tomllib

            data = tomllib.loads(raw.decode())
        else:
            from mrunc.executor.jsontext import loads

            data = loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise PolicyError(f"policy {path}: /: not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path}: /: expected an object with {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise PolicyError(f"policy {path}: /{key}: unknown key; allowed: {', '.join(KEYS)}")
    approved = data.get("approved", [])
    if not isinstance(approved, list) or not all(isinstance(d, str) and _is_digest(d) for d in approved):
        raise PolicyError(f"policy {path}: /approved: expected a list of plan digests (sha256: and 64 hex digits)")
    journal = data.get("journal", DEFAULT_JOURNAL)
    if not isinstance(journal, str) or not journal.startswith("/"):
        raise PolicyError(f"policy {path}: /journal: expected an absolute directory path, got {journal!r}")
    spec = data.get("profile", "baseline")
    if not isinstance(spec, str):
        raise PolicyError(f"policy {path}: /profile: expected baseline, restricted or a profile file's path")
    try:
        profile = profiles.load(spec)
    except profiles.ProfileError as e:
        raise PolicyError(f"policy {path}: /profile: {e}") from None
    return Policy(path, profile, approved, journal)


def _is_digest(value: str) -> bool:
    hex_part = value.removeprefix("sha256:")
    return value.startswith("sha256:") and len(hex_part) == 64 and all(c in "0123456789abcdef" for c in hex_part)


def enforce(policy: Policy, plan: dict, text: str | None, config: dict | None, container_id: str,
            kind: str) -> str | None:
    """Judge a compiled plan (`kind`: create, run or exec; `text` its JSON as `mrunc compile` writes it, if at hand),
    record it, and say why it is refused (None: allowed)."""
    from mrunc import canonical
    from mrunc.executor.plan import sha256_hex

    if text is None:
        from mrunc.compiler.compile import dumps

        text = dumps(plan)

    digest = "sha256:" + sha256_hex(text.encode())
    canonical_digest = canonical.digest(plan)
    reasons = _reasons(_findings(policy, plan, config, kind))
    if policy.approved and digest not in policy.approved and canonical_digest not in policy.approved:
        reasons.append(f"plan {digest} (canonical {canonical_digest}) is not among the policy's approved plans")
    verdict = "refused" if reasons else "allowed"
    _record(policy, plan, text, (digest, canonical_digest), container_id, kind, verdict, reasons)
    if not reasons:
        return None
    return (f"policy {policy.path} refuses {kind} of container {container_id!r} (profile {policy.profile.name}, "
            f"plan {digest}):\n  " + "\n  ".join(reasons))


def _reasons(findings: list) -> list[str]:
    """One line per control, worst first (a privileged container has a hundred host device nodes)."""
    by_control: dict[str, list] = {}
    for f in findings:
        by_control.setdefault(f.control, []).append(f)
    lines = []
    for control, hits in by_control.items():
        first = hits[0]
        shown = "; ".join(f"{f.grants} (at {f.pointer})" for f in hits[:3])
        more = f"; and {len(hits) - 3} more" if len(hits) > 3 else ""
        lines.append(f"[{first.severity}] {control}: {first.title}: {shown}{more}")
    return lines


def _findings(policy: Policy, plan: dict, config: dict | None, kind: str) -> list:
    from mrunc.review import audit
    from mrunc.review.inputs import Subject

    profile = policy.profile
    if kind == "exec":
        # An exec that joins a user namespace joins the container's own (init's): its uid 0 is not the host's.
        own_userns = any(o["op"] == "setns" and o["args"]["type"] == "user" for o in plan["ops"])
        controls = [c for c in profile.controls if c.startswith(EXEC_CONTROL_PREFIXES)
                    and not (own_userns and c == "process.root-without-userns")]
        profile = type(profile)(profile.name, controls, profile.waived)
    report = audit.audit(Subject(kind, plan, config, f"the {kind}'s config"), profile)
    return [f for f in report.findings if f.waived is None]


def _record(policy: Policy, plan: dict, text: str, digests: tuple[str, str], container_id: str, kind: str,
            verdict: str, reasons: list[str]) -> None:
    """One JSON line in journal.jsonl, and the plan kept by its digest (both root's alone)."""
    import time

    from mrunc.executor.jsontext import dumps

    digest, canonical_digest = digests
    plans = os.path.join(policy.journal, "plans")
    os.makedirs(plans, mode=0o700, exist_ok=True)
    stored = os.path.join(plans, digest.replace(":", "-") + ".json")
    if not os.path.exists(stored):
        temporary = f"{stored}.{os.getpid()}"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(text)
        os.rename(temporary, stored)
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": kind, "id": container_id,
             "bundle": plan.get("bundle"), "config_sha256": plan.get("config_sha256"), "plan": digest,
             "canonical": canonical_digest, "plan_file": stored, "verdict": verdict, "profile": policy.profile.name,
             "reasons": reasons}
    journal = os.open(os.path.join(policy.journal, "journal.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(journal, (dumps(entry) + "\n").encode())  # one write: lines of concurrent creates never mix
    finally:
        os.close(journal)

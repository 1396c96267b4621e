"""Does a plan still do what its config asks for where security is concerned? A cheap cross-check that `exec`
makes before running a plan, against the bundle's config.json it has just read to check the plan is current: a
plan edited by hand to skip its seccomp load or capability drop, to unmask a path or to run as another user is
refused without importing the compiler. (`mrunc verify` goes further: it recompiles the config and compares every
op.)"""

MASKS = (("maskedPaths", "mask_path"), ("readonlyPaths", "readonly_path"))


def gaps(plan: dict, config: object) -> list[str]:
    """What the config asks for that the plan's ops do not do, each by the config field's pointer."""
    if not isinstance(config, dict):
        return ["/: the bundle's config.json is not a JSON object"]
    ops: dict[str, list[dict]] = {}
    for o in plan["ops"]:
        ops.setdefault(o["op"], []).append(o["args"])
    linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
    process = config.get("process") if isinstance(config.get("process"), dict) else None
    found = []
    if linux.get("seccomp") and "seccomp_load" not in ops:
        found.append("/linux/seccomp: the config loads a seccomp filter; the plan has no seccomp_load")
    for field, op in MASKS:
        # By the op's source pointer: a path through a symlink in the rootfs is lowered to what the link names.
        done = {o["src"] for o in plan["ops"] if o["op"] == op}
        found += [f"/linux/{field}/{i}: {path} has no {op} op in the plan"
                  for i, path in enumerate(linux.get(field) or []) if f"/linux/{field}/{i}" not in done]
    namespaces = [n.get("type") for n in linux.get("namespaces") or [] if isinstance(n, dict)]
    root_op = "pivot_root" if "mount" in namespaces else "chroot"
    if root_op not in ops:
        found.append(f"/root/path: the plan has no {root_op} into the container's root")
    if process is not None:
        found += _process_gaps(process, ops)
    return found


def _process_gaps(process: dict, ops: dict[str, list[dict]]) -> list[str]:
    found = []
    user = process.get("user") or {}
    ids = {"uid": user.get("uid", 0), "gid": user.get("gid", 0), "additional_gids": user.get("additionalGids", [])}
    if ops.get("set_ids") != [ids]:
        found.append(f"/process/user: the config runs the process as {ids}; the plan's set_ids ops are "
                     f"{ops.get('set_ids', [])}")
    if process.get("noNewPrivileges") and "no_new_privs" not in ops:
        found.append("/process/noNewPrivileges: the config sets no_new_privs; the plan does not")
    caps = process.get("capabilities")
    if isinstance(caps, dict):
        if [sorted(a["keep"]) for a in ops.get("drop_bounding", [])] != [sorted(set(caps.get("bounding", [])))]:
            found.append("/process/capabilities/bounding: the plan's drop_bounding does not keep exactly the config's "
                         "bounding set")
        for kind in ("effective", "permitted", "inheritable"):
            if [sorted(a[kind]) for a in ops.get("capset", [])] != [sorted(set(caps.get(kind, [])))]:
                found.append(f"/process/capabilities/{kind}: the plan's capset does not set exactly the config's "
                             f"{kind} set")
    if [a["args"] for a in ops.get("execve", [])] != [process.get("args")]:
        found.append("/process/args: the plan's execve does not run the config's process.args")
    return found

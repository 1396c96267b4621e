"""Issue 16.2: container ids are checked up front by runc's rule, for every command that takes one. An id becomes a
state directory's name, a cgroup's and part of engines' logs: non-ASCII letters, a trailing newline, `..`, `/` and
over-long ids are refused before anything is made; an id that starts with `-` is an unknown option, as in runc."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mrunc.state import valid_id
from tests.conftest import base_config
from tests.lifecycle_helpers import Lifecycle

EXAMPLES = int(os.environ.get("MRUNC_HYPOTHESIS_EXAMPLES", "30"))
NAME_MAX = 255


def go_clean(path: str) -> str:
    """Go's filepath.Clean for an absolute path (what runc's utils.CleanPath does with one)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def runc_accepts(container_id: str) -> bool:
    """runc's validateID (libcontainer), byte by byte as Go does, and its state dir's limit: a name past NAME_MAX
    fails at lstat/mkdir ("file name too long") before runc makes anything."""
    data = container_id.encode("utf-8", "surrogatepass")
    if not data or len(data) > NAME_MAX:
        return False
    allowed = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-."
    if any(byte not in allowed for byte in data):
        return False
    return "/" + container_id == go_clean("/" + container_id)


# Mostly runc's characters, with what a careless user or an attacker adds: `,` (in the range `+-.` of runc's
# old regex), `/`, whitespace, a newline, NUL, Unicode letters and digits that Python's \w takes.
NEAR_CHARS = st.sampled_from(list("aZ09_+-.") + [",", "/", " ", "\n", "\t", "\0", "é", "ü", "ß", "٣", "Ａ", "ı"])
IDS = st.text(NEAR_CHARS, max_size=12) | st.text(max_size=12) | st.text("a.", min_size=250, max_size=260)


@settings(max_examples=EXAMPLES * 20, deadline=None, database=None, suppress_health_check=list(HealthCheck),
          derandomize=os.environ.get("MRUNC_HYPOTHESIS_RANDOM") != "1")
@given(IDS)
@example("")
@example(".")
@example("..")
@example("...")
@example("a\n")
@example("ünï")
@example("-x")
@example("a" * NAME_MAX)
@example("a" * (NAME_MAX + 1))
def test_mrunc_id_check_accepts_exactly_what_runc_accepts(container_id):
    assert valid_id(container_id) == runc_accepts(container_id)


BAD_IDS = {"non-ascii": "ünï", "trailing newline": "c1\n", "dot-dot": "..", "dot": ".", "slash": "a/b",
           "escape": "../etc", "over-long": "a" * (NAME_MAX + 1), "space": "a b", "comma": "a,b"}
COMMANDS = [["run", "--bundle", "{bundle}"], ["run", "--detach", "--bundle", "{bundle}"],
            ["create", "--bundle", "{bundle}"], ["start"], ["state"], ["kill"], ["delete"], ["delete", "--force"],
            ["pause"], ["resume"], ["ps"], ["exec", "--process", "{bundle}/process.json"],
            ["update", "--pids-limit", "9"]]


def nothing_made(lc: Lifecycle) -> None:
    """No state root (create would have made it first), no cgroup of the config's cgroupsPath."""
    assert not lc.bundle.state_root.exists(), sorted(os.listdir(lc.bundle.state_root))
    assert not list(Path("/sys/fs/cgroup").glob(f"*{lc.bundle.cgroup}"))


@pytest.mark.parametrize("what", BAD_IDS)
def test_a_bad_id_is_refused_by_every_command_before_anything_is_made(lc, bundle, what):
    bundle.write(base_config(["true"]))
    (bundle.path / "process.json").write_text('{"args": ["true"], "cwd": "/"}')
    for command in COMMANDS:
        args = [a.format(bundle=bundle.path) for a in command]
        result = lc(*args, BAD_IDS[what])
        lines = result.stderr.splitlines()
        assert result.returncode == 1, (command, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("mrunc: invalid container id "), (command, result.stderr)
        assert "ASCII letters" in lines[0]
        nothing_made(lc)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_id_with_a_leading_dash_is_an_unknown_option_as_in_runc(lc, bundle, command):
    bundle.write(base_config(["true"]))
    result = lc(*[a.format(bundle=bundle.path) for a in command], "-x")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    nothing_made(lc)


def test_the_longest_id_runc_allows_runs(lc, bundle):
    longest = "c" * NAME_MAX
    bundle.write(base_config(["sh", "-c", "echo ok"]))
    result = lc("run", "--bundle", str(bundle.path), longest)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert os.listdir(bundle.state_root) == []

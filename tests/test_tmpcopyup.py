"""tmpcopyup (podman adds it to every tmpfs it asks for): the directory's contents are copied into the new tmpfs,
modes, owners, times, hard links, symlinks and special files kept, as runc copies them; the tmpfs root takes the
directory's mode and owner. Checked from inside a real container against what the rootfs holds."""

import os
import stat

from tests.conftest import base_config, mrunc, run_config

LIST = "cd /data && for f in . * sub/*; do stat -c '%n %a %u %g %h %Y %F' \"$f\"; done; readlink link; cat sub/deep"


def _tree(rootfs) -> None:
    data = rootfs / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file").write_text("hello\n")
    os.link(data / "file", data / "hard")
    (data / "link").symlink_to("file")
    os.mkfifo(data / "fifo")
    (data / "sub" / "deep").write_text("deep\n")
    os.chown(data / "sub", 1000, 1000)
    os.chown(data / "file", 1000, 1000)
    os.chmod(data / "file", 0o4750)
    os.chmod(data / "sub", 0o750)
    os.chmod(data, 0o1777)
    os.utime(data / "sub" / "deep", (1_000_000_000, 1_000_000_000))


def _expected(data) -> list[str]:
    kinds = {stat.S_IFDIR: "directory", stat.S_IFREG: "regular file", stat.S_IFIFO: "fifo",
             stat.S_IFLNK: "symbolic link"}
    lines = []
    names = [".", *sorted(p.name for p in data.iterdir()), *sorted(f"sub/{p.name}" for p in (data / "sub").iterdir())]
    for name in names:
        st = os.lstat(data / name)
        lines.append(f"{name} {stat.S_IMODE(st.st_mode):o} {st.st_uid} {st.st_gid} {st.st_nlink} {int(st.st_mtime)} "
                     f"{kinds[stat.S_IFMT(st.st_mode)]}")
    return lines


def test_tmpfs_with_tmpcopyup_holds_a_copy_of_the_directory(bundle):
    rootfs = bundle.path / "rootfs"
    _tree(rootfs)
    config = base_config(["sh", "-c", LIST + "; grep ' /data ' /proc/mounts; echo new > /data/new && echo written"])
    config["process"]["capabilities"]["bounding"].append("CAP_DAC_OVERRIDE")
    config["process"]["capabilities"]["effective"].append("CAP_DAC_OVERRIDE")
    config["process"]["capabilities"]["permitted"].append("CAP_DAC_OVERRIDE")
    config["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "tmpcopyup"]})
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = _expected(rootfs / "data")
    assert lines[:len(expected)] == expected
    assert lines[len(expected):len(expected) + 2] == ["file", "deep"]
    assert lines[-2].startswith("tmpfs /data tmpfs rw,nosuid,nodev")
    assert lines[-1] == "written"
    assert not (rootfs / "data" / "new").exists()  # the writes went to the tmpfs


def test_a_read_only_tmpcopyup_is_filled_then_read_only_and_a_missing_dir_gives_an_empty_tmpfs(bundle):
    rootfs = bundle.path / "rootfs"
    _tree(rootfs)
    config = base_config(["sh", "-c", "cat /data/file; touch /data/x 2>&1; ls -A /fresh | wc -l; stat -c %a /fresh; "
                                      "grep -E ' /(data|fresh) ' /proc/mounts"])
    config["mounts"] += [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "tmpcopyup"]},
        {"destination": "/fresh", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=700"]}]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the file (owner 1000, 4750) copied; /fresh, made for the mount: empty, with the tmpfs's own mode= (as runc)
    assert lines[:4] == ["hello", "touch: /data/x: Read-only file system", "0", "700"], result.stdout
    assert lines[4].startswith("tmpfs /data tmpfs ro,") and lines[5].startswith("tmpfs /fresh tmpfs rw,"), lines
    assert not (rootfs / "fresh").is_symlink() and list((rootfs / "fresh").iterdir()) == []


def test_tmpcopyup_is_an_op_in_the_listing_and_ignored_with_a_note_off_tmpfs(bundle):
    config = base_config(["true"])
    config["mounts"] += [{"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "tmpcopyup"]},
                         {"destination": "/q", "type": "mqueue", "source": "mqueue", "options": ["tmpcopyup"]}]
    bundle.write(config)
    listing = mrunc("compile", "--format", "text", str(bundle.config_path), private_mounts=False)
    assert listing.returncode == 0, listing.stderr
    assert "tmpfs_copyup        source=tmpfs target=/run flags=[] data=None" in listing.stdout
    assert "remount             target=/run flags=['MS_REMOUNT', 'MS_RDONLY']" in listing.stdout
    assert "note: /mounts/8/options: tmpcopyup is for tmpfs; ignored on mqueue (as runc ignores it)" in listing.stdout


def test_tmpcopyup_is_expressed_in_the_sh_rendering(bundle):
    config = base_config(["true"])
    config["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]})
    bundle.write(config)
    script = mrunc("compile", "--format", "sh", str(bundle.config_path), private_mounts=False)
    assert script.returncode == 0, script.stderr
    assert "NOT EXPRESSIBLE in sh: tmpfs_copyup" not in script.stdout
    assert "cp -a" in script.stdout

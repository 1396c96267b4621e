"""Real containers: the process attributes execve keeps (personality), each read back from inside."""

from tests.conftest import base_config, run_config


def test_personality_linux32_makes_uname_report_i686(bundle):
    config = base_config(["uname", "-m"])
    config["linux"]["personality"] = {"domain": "LINUX32"}
    result = run_config(bundle, config)
    assert (result.returncode, result.stdout.strip()) == (0, "i686"), result.stderr


def test_personality_linux_keeps_the_hosts_machine(bundle):
    config = base_config(["uname", "-m"])
    config["linux"]["personality"] = {"domain": "LINUX"}
    result = run_config(bundle, config)
    assert (result.returncode, result.stdout.strip()) == (0, "x86_64"), result.stderr

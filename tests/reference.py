"""The reference configs (real runc/podman output, the official OCI examples), made runnable in a test bundle."""

import json
import os

from tests.conftest import REFERENCE

CONFIGS = REFERENCE / "configs"
OFFICIAL = REFERENCE / "oci-runtime-spec-v1.3.0" / "test" / "config"


def reference_config(name: str, args: list[str] | None = None) -> dict:
    """A config from reference/configs, without a terminal (tests read stdout), optionally with our command."""
    config = json.loads((CONFIGS / name).read_text())
    config["process"]["terminal"] = False
    if args is not None:
        config["process"]["args"] = args
    if os.environ.get("MRUNC_TEST_CONTAINER_ENV"):  # set in the cgroup v2 guest only (tests/guest/init.sh)
        config["process"]["env"].append(os.environ["MRUNC_TEST_CONTAINER_ENV"])
    return config

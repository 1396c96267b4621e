"""Process attributes the kernel keeps across execve, one syscall each on init: linux.personality (personality(2)).
"""

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError

# config-linux.md "Personality": domain -> personality(2) domain
PERSONALITY_DOMAINS = {"LINUX": "PER_LINUX", "LINUX32": "PER_LINUX32"}


def check(config: dict) -> None:
    personality = config.get("linux", {}).get("personality")
    if personality and personality.get("flags"):
        raise ConfigError("/linux/personality/flags", f"got {personality['flags']}; allowed: [] (the spec defines "
                          "no personality flags)")


def lower(emit: Emitter, config: dict) -> None:
    personality = config.get("linux", {}).get("personality")
    if personality:
        emit("personality", "init", "/linux/personality", domain=PERSONALITY_DOMAINS[personality["domain"]])

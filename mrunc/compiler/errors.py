"""The one error a bad config raises: where (JSON pointer), what was wrong, what is allowed."""


class ConfigError(Exception):
    def __init__(self, pointer: str, problem: str) -> None:
        self.pointer = pointer or "/"
        self.problem = problem
        super().__init__(f"{self.pointer}: {problem}")


class ConfigErrors(Exception):
    """Several problems found at once (schema validation reports all it finds)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def pointer(*parts: object) -> str:
    """JSON pointer from path parts, escaping ~ and / as RFC 6901 says."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)

"""`mrunc resume ID`: thaw a paused container."""

from mrunc.commands import pause


def main(options, args: list[str]) -> int:
    return pause.main(options, args, pause=False)

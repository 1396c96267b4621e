"""The interpreter: replays a plan op by op. Standard library only (see design.md, exec-path budget)."""

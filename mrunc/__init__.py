"""mrunc: an OCI container runtime built as a compiler (config -> plan) and an interpreter (plan -> container)."""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"  # the OCI runtime-spec version mrunc implements

"""Files: atomic writes, the one safe ``.pt`` reader and writer, and run-folder manifests."""

from ganforge.io.atomic import atomic_path, atomic_save, atomic_write_bytes
from ganforge.io.rundir import read_manifest, require_kind, run_kind, write_manifest
from ganforge.io.safe import load_safely, save_state

__all__ = [
    "atomic_path",
    "atomic_save",
    "atomic_write_bytes",
    "load_safely",
    "read_manifest",
    "require_kind",
    "run_kind",
    "save_state",
    "write_manifest",
]

"""node-bootstrap: turns the EC2 machines of terraform/ into a kubeadm cluster over SSH.

Entry point: `python -m node_bootstrap cluster|bootstrap|doctor|kubeconfig|destroy` (the Makefile
targets). The node work itself lives in node-bootstrap/scripts/*.sh, one idempotent step per file.
"""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = PACKAGE_DIR.parent / "scripts"
TEMPLATES_DIR = PACKAGE_DIR / "templates"

"""`sft dashboard`: serve the read-only web view of runs and data (localhost by default)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sftpipe.cli.common import UsageError, add_root


def serve(root: Path, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Run the dashboard over the project at `root` until interrupted."""
    import uvicorn

    from sftpipe.dashboard.app import create_app

    root = Path(root)
    if not (root / "artifacts").is_dir() and not (root / "config").is_dir():
        raise UsageError(f"{root} has neither artifacts/ nor config/: not a project root (use --root)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {host}: anyone who can reach it reads your runs and data (no auth)",
            file=sys.stderr,
        )
    print(f"sft dashboard: http://{host}:{port}/  (project {root.resolve()}; Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(root), host=host, port=port, log_level="warning", access_log=False)
    return 0


def _cmd(args: argparse.Namespace) -> int:
    return serve(args.root, args.host, args.port)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `sft dashboard` (binds localhost unless --host says otherwise)."""
    p = subparsers.add_parser("dashboard", help="local web view of runs, comparisons and converted data")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8765)
    add_root(p)
    p.set_defaults(func=_cmd)

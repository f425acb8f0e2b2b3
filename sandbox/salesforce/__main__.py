"""`python -m sandbox.salesforce --port N --folder DIR`: serve the Salesforce sandbox over TLS."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.salesforce.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--folder", type=Path, required=True, help="its connected app and certificate"
    )
    args = parser.parse_args()
    serve(args.host, args.port, args.folder)


if __name__ == "__main__":
    main()

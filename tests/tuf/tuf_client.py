#!/usr/bin/env python3
"""A TUF client that is not Flotilla's: python-tuf's ngclient, the reference implementation.

    tuf_client.py --url URL --ca CA.pem --metadata DIR --downloads DIR TARGET

Starts from DIR/root.json (the trusted root, written there by the test), refreshes the
top-level metadata from URL, downloads TARGET, checks its length and hashes, and runs it with
`--help` as orbit does before it installs an update. Prints one JSON line:

    {"ok": true, "target": ..., "version": ..., "help": ..., "roots": N, "timestamp": V}
    {"ok": false, "error": "ExpiredMetadataError", "message": ...}

and exits 0 when the update was verified, 2 when TUF refused it.
"""

import argparse
import json
import os
import subprocess
import sys

from tuf.api import exceptions
from tuf.ngclient import Updater, Urllib3Fetcher

try:
    from tuf.ngclient._internal.proxy import ProxyEnvironment
except ImportError:  # a python-tuf without it: trust the CA through the environment instead
    ProxyEnvironment = None


class PinnedFetcher(Urllib3Fetcher):
    """The stock urllib3 fetcher, trusting only the server's CA."""

    def __init__(self, ca):
        super().__init__(socket_timeout=10)
        if ProxyEnvironment is not None:
            self._proxy_env = ProxyEnvironment(
                headers={"User-Agent": "flotilla-tests python-tuf"}, ca_certs=ca
            )
        else:
            os.environ["SSL_CERT_FILE"] = ca


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--downloads", required=True)
    parser.add_argument("target")
    args = parser.parse_args()

    os.makedirs(args.downloads, exist_ok=True)
    options = dict(
        metadata_dir=args.metadata,
        metadata_base_url=args.url,
        target_base_url=args.url.rstrip("/") + "/targets/",
        target_dir=args.downloads,
        fetcher=PinnedFetcher(args.ca),
    )
    # Trust starts from metadata/root.json and what earlier runs kept beside it (so a
    # rollback across runs is caught); python-tuf >= 6 wants that said with bootstrap=None.
    try:
        updater = Updater(**options, bootstrap=None)
    except TypeError:
        updater = Updater(**options)
    try:
        updater.refresh()
        info = updater.get_targetinfo(args.target)
        if info is None:
            raise exceptions.RepositoryError(f"no target {args.target}")
        path = os.path.join(args.downloads, args.target.replace("/", "_"))
        # Always download: a cached copy would hide a target changed on the server.
        if os.path.exists(path):
            os.remove(path)
        updater.download_target(info, path)
    except exceptions.RepositoryError as error:
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error)}))
        return 2
    except exceptions.DownloadError as error:
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error)}))
        return 2

    os.chmod(path, 0o755)
    help_run = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    if help_run.returncode != 0:
        print(json.dumps({"ok": False, "error": "HelpFailed", "message": help_run.stderr}))
        return 2
    trusted_root = json.load(open(os.path.join(args.metadata, "root.json")))
    trusted_timestamp = json.load(open(os.path.join(args.metadata, "timestamp.json")))
    print(
        json.dumps(
            {
                "ok": True,
                "target": args.target,
                "version": info.custom.get("version"),
                "help": help_run.stdout.strip(),
                "roots": trusted_root["signed"]["version"],
                "timestamp": trusted_timestamp["signed"]["version"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

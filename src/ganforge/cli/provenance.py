"""``ganforge keys init`` and ``ganforge verify``: signing keys and checking provenance."""

from __future__ import annotations

import argparse
import sys

from ganforge.cli.flags import add_force, formatter

VERIFY_EXAMPLES = """examples:
  ganforge verify signed/*.png
  ganforge verify image.png --trust ~/.config/ganforge/keys/ca.pem
  ganforge verify stripped.png --expect runs/demo      # whose watermark is it?

exit codes: 0 all trusted, 3 valid but untrusted signer, 4 unsigned, 5 tampered (the worst
file's), 2 bad input.
"""


def add(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser(
        "keys",
        help="make local test signing keys",
        description="'ganforge keys init' makes a local test authority (ca.pem) and a signing "
        "certificate and key it issued (signer.pem, signer.key, owner-only), for 'ganforge "
        "sample --sign'. It is marked UNTRUSTED: files it signs verify as trusted only with "
        "--trust pointing at its ca.pem. For real provenance use your own certificate "
        "(--cert/--key).",
        formatter_class=formatter,
    )
    k.add_argument("action", choices=("init",))
    k.add_argument("--dir", help="where (default: $GANFORGE_KEYS, else ~/.config/ganforge/keys)")
    add_force(k)
    k.set_defaults(run=run_keys)

    v = sub.add_parser(
        "verify",
        help="check the provenance of image files",
        epilog=VERIFY_EXAMPLES,
        formatter_class=formatter,
        description="For each image (PNG or JPEG manifests): trusted, valid but untrusted "
        "signer, tampered (with what "
        "failed) or unsigned, from its C2PA manifest; without a valid manifest, also whether "
        "it carries a ganforge watermark.",
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--trust", metavar="CA.pem", help="trust anchors (PEM) for the signers")
    v.add_argument(
        "--expect", metavar="RUN|ID", help="a run folder or generator id whose mark to test for"
    )
    v.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    v.set_defaults(run=run_verify)


def run_keys(args: argparse.Namespace) -> int:
    from ganforge.provenance.keys import init_test_keys

    folder = init_test_keys(args.dir, force=args.force)
    print(
        f"wrote a local TEST authority and signing key to {folder} (ca.pem, signer.pem, "
        "signer.key; the key is owner-only).\nIt is untrusted by anyone else: verify with "
        f"--trust {folder / 'ca.pem'} to check files you signed."
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ganforge.errors import GanforgeError
    from ganforge.io.atomic import atomic_write_json
    from ganforge.provenance.verify import expected_payload, verify_files

    trust = None
    if args.trust:
        try:
            trust = Path(args.trust).read_bytes()
        except OSError as err:
            raise GanforgeError(f"cannot read --trust {args.trust}: {err.strerror}") from None
    expect = expected_payload(args.expect) if args.expect else None
    verdicts = verify_files(args.files, trust, expect)
    for verdict in verdicts:
        print(verdict.line())
    if args.json:
        rows = [v.__dict__ | {"exit_code": v.exit_code} for v in verdicts]
        atomic_write_json(args.json, rows)
    sys.stdout.flush()
    return max(v.exit_code for v in verdicts)

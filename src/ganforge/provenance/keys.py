"""Signing keys for C2PA manifests: the user's own certificate chain and key, or a local
test authority that ``ganforge keys init`` makes.

The test authority is a self-made CA whose name says it is an untrusted local test; files
it signs verify as "valid, untrusted signer" everywhere except with ``--trust`` pointing at
its ``ca.pem``. Its CA key is not kept (nothing more can be issued from it). Private keys
are written owner-only (0600) and atomically; keys are never written into a run folder.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes
from ganforge.io.rundir import read_manifest

TEST_AUTHORITY = "ganforge LOCAL TEST CA - UNTRUSTED"
CERT, KEY, CA = "signer.pem", "signer.key", "ca.pem"
ENV = "GANFORGE_KEYS"


@dataclass(frozen=True)
class SigningKey:
    """A PEM certificate chain (signer first) and its PEM private key."""

    chain: bytes
    key: bytes
    source: str  # where it was read, for messages


def default_folder() -> Path:
    """``$GANFORGE_KEYS``, else ``~/.config/ganforge/keys``."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path.home() / ".config" / "ganforge" / "keys"


def _refuse_run_folder(folder: Path) -> None:
    for parent in (folder, *folder.parents):
        if parent.is_dir() and read_manifest(parent) is not None:
            raise GanforgeError(
                f"{folder} is inside the run folder {parent}; keys are never kept with runs "
                "(they would be shared with the run). Choose a folder outside it"
            )


def init_test_keys(folder: str | Path | None = None, force: bool = False) -> Path:
    """Make a local test authority and a signing certificate it issued, in ``folder``
    (default :func:`default_folder`): ``ca.pem`` (the authority, a trust anchor for
    ``verify --trust``), ``signer.pem`` (the signer's chain) and ``signer.key`` (0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = (Path(folder) if folder is not None else default_folder()).resolve()
    if folder.exists() and not folder.is_dir():
        raise GanforgeError(f"{folder} is a file, not a folder")
    _refuse_run_folder(folder)
    if not force and any((folder / name).exists() for name in (CERT, KEY, CA)):
        raise GanforgeError(f"{folder} already holds keys; pass --force to replace them")

    def name(common: str) -> x509.Name:
        return x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ganforge local test (untrusted)"),
        ])  # fmt: skip

    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "encipher_only", "decipher_only"), False,
    )  # fmt: skip
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(TEST_AUTHORITY))
        .issuer_name(name(TEST_AUTHORITY))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("ganforge local test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write_bytes(folder / KEY, key_pem, mode=0o600)
    atomic_write_bytes(folder / CERT, cert.public_bytes(pem) + ca.public_bytes(pem))
    atomic_write_bytes(folder / CA, ca.public_bytes(pem))
    return folder


def load_signing_key(cert: str | Path | None = None, key: str | Path | None = None) -> SigningKey:
    """The chain and key given, or those of the default folder's test authority."""
    if (cert is None) != (key is None):
        raise GanforgeError("give both --cert and --key, or neither (the test keys)")
    if cert is None:
        folder = default_folder()
        cert, key = folder / CERT, folder / KEY
        if not Path(cert).exists():
            raise GanforgeError(
                f"no signing key: give --cert and --key, or make local test keys with "
                f"'ganforge keys init' (they go to {folder})"
            )
    data = {}
    for label, path in (("certificate", cert), ("key", key)):
        try:
            data[label] = Path(path).read_bytes()
        except OSError as err:
            raise GanforgeError(f"cannot read the signing {label} {path}: {err.strerror}") from None
        if b"-----BEGIN" not in data[label]:
            raise GanforgeError(f"{path} is not a PEM {label}")
    return SigningKey(data["certificate"], data["key"], str(cert))

"""Signed provenance: C2PA manifests inside generated PNGs, and checking them.

Each manifest declares the image ``trainedAlgorithmicMedia`` (IPTC digital source type),
names ``ganforge`` as its claim generator and carries a ``org.ganforge.generation``
assertion: the generator id (SHA-256 of the generator's weights), the run, the noise seed,
the image's index in its batch and its class. The signature covers the pixels (a hash of
the file outside the manifest), so changing a pixel, an assertion, or moving the manifest
to another file breaks it. Everything runs offline (no OCSP, no remote manifests, no
timestamp authority).

:func:`verify` sorts a file into one of :data:`OUTCOMES`; the CLI's exit code is the
outcome's.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.provenance.keys import SigningKey

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ASSERTION = "org.ganforge.generation"
PNG_MIME = "image/png"
# outcome -> exit code of `ganforge verify` (the worst file's)
OUTCOMES = {"trusted": 0, "untrusted": 3, "unsigned": 4, "tampered": 5}
UNTRUSTED_CODES = {"signingCredential.untrusted"}
OFFLINE = {
    "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},  # a 28x28 PNG needs no thumbnail
}


@dataclass
class Verdict:
    """What :func:`verify` found in one file."""

    path: str
    outcome: str  # one of OUTCOMES
    generation: dict[str, Any] | None = None  # the ganforge assertion, when signed
    signer: str | None = None
    failures: list[str] = field(default_factory=list)  # what failed, for "tampered"
    watermark: dict[str, Any] | None = None  # read when there is no valid manifest

    @property
    def exit_code(self) -> int:
        return OUTCOMES[self.outcome]

    def line(self) -> str:
        if self.outcome == "trusted":
            text = f"trusted: signed by {self.signer}"
        elif self.outcome == "untrusted":
            text = f"valid, untrusted signer: {self.signer}"
        elif self.outcome == "tampered":
            text = "TAMPERED: " + "; ".join(self.failures)
        else:
            text = "unsigned"
        if self.generation and self.outcome != "tampered":
            g = self.generation
            said = [f"generator {str(g.get('generator_id', '?'))[:12]}", f"seed {g.get('seed')}",
                    f"image {g.get('index')}"]  # fmt: skip
            if g.get("class") is not None:
                said.append(f"class {g['class']}")
            text += " (" + ", ".join(said) + ")"
        if self.watermark is not None and self.watermark.get("error"):
            text += f"; watermark unreadable ({self.watermark['error']})"
        elif self.watermark is not None:
            w = self.watermark
            text += f"; watermark {'found' if w['found'] else 'not found'}"
            if w["found"] or w.get("matches") is not None:
                text += f": payload {w['payload']}"
            if w.get("matches") is not None:
                text += f", {'matches' if w['matches'] else 'does not match'} {w['expected']}"
        return f"{self.path}: {text}"


def _c2pa():
    try:
        import c2pa
    except ImportError as err:  # pragma: no cover - a dependency
        raise GanforgeError(f"signing needs c2pa-python ({err}); pip install c2pa-python") from None
    return c2pa


def _context(trust: bytes | None = None):
    c2pa = _c2pa()
    settings: dict[str, Any] = json.loads(json.dumps(OFFLINE))
    if trust is not None:
        settings["verify"]["verify_trust"] = True
        settings["trust"] = {"trust_anchors": trust.decode(errors="replace")}
    return c2pa.Context.from_dict(settings)


def trust_context(trust: bytes | None = None):
    """The reading context with ``trust`` (PEM anchors) checked: anchors that are not
    certificates are the user's error, not a file's tampering."""
    c2pa = _c2pa()
    if trust is not None:
        from cryptography import x509

        try:
            x509.load_pem_x509_certificates(trust)
        except ValueError:
            raise GanforgeError("the trust anchors are not PEM certificates") from None
    try:
        return _context(trust)
    except c2pa.C2paError as err:
        raise GanforgeError(f"the trust anchors cannot be used ({_first_line(err)})") from None


def manifest_definition(generation: dict[str, Any], title: str) -> dict[str, Any]:
    from ganforge import __version__

    return {
        "claim_generator_info": [{"name": "ganforge", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED},
            ]}},
            {"label": ASSERTION, "data": generation},
        ],
    }  # fmt: skip


def sign_png(png: bytes, generation: dict[str, Any], key: SigningKey, title: str) -> bytes:
    """``png`` with a signed C2PA manifest that says ``generation`` made it."""
    c2pa = _c2pa()
    try:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, key.chain, key.key, None)
        signer = c2pa.Signer.from_info(info)
        builder = c2pa.Builder(manifest_definition(generation, title), context=_context())
        out = io.BytesIO()
        builder.sign(signer, PNG_MIME, io.BytesIO(png), out)
    except c2pa.C2paError as err:
        raise GanforgeError(
            f"cannot sign with {key.source}: {_first_line(err)} (an ES256 key and its "
            "certificate chain are needed)"
        ) from None
    return out.getvalue()


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# Containers whose manifests are read (c2pa reads more; these are what images come as).
MIMES = {b"\x89PNG\r\n\x1a\n": PNG_MIME, b"\xff\xd8\xff": "image/jpeg"}


def read_manifest_store(data: bytes, context, mime: str = PNG_MIME) -> dict[str, Any] | None:
    """The file's C2PA manifest store as c2pa reports it (validation included, with
    ``context`` from :func:`trust_context`), or None when it has none. A manifest too broken
    to read raises GanforgeError."""
    c2pa = _c2pa()
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=context)
    except c2pa.C2paError.ManifestNotFound:
        return None
    except c2pa.C2paError as err:
        raise GanforgeError(f"its manifest cannot be read ({_first_line(err)})") from None
    with reader:
        return json.loads(reader.json())


def _is_image(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:  # PIL raises many kinds for data that is not an image
        return False
    return True


def verify(path: str | Path, trust: bytes | None = None, context=None) -> Verdict:
    """Check one image file's manifest (PNG or JPEG; other images are ``unsigned``):
    ``trusted`` (valid, and its chain ends at an anchor of ``trust``, PEM), ``untrusted``
    (valid, other signer), ``tampered`` (the signature or a hash fails, or the manifest is
    broken) or ``unsigned``. ``context``: a :func:`trust_context` of ``trust`` to reuse."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise GanforgeError(f"cannot read {path}: {err.strerror}") from None
    mime = next((m for magic, m in MIMES.items() if data.startswith(magic)), None)
    if mime is None:
        if not _is_image(data):
            raise GanforgeError(f"{path} is not an image file")
        return Verdict(str(path), "unsigned")  # a format we do not read manifests from
    try:
        store = read_manifest_store(data, context or trust_context(trust), mime)
    except GanforgeError as err:
        return Verdict(str(path), "tampered", failures=[str(err)])
    if store is None:
        return Verdict(str(path), "unsigned")
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    generation = next(
        (a.get("data") for a in active.get("assertions", []) if a.get("label") == ASSERTION),
        None,
    )
    signer = (active.get("signature_info") or {}).get("common_name") or (
        active.get("signature_info") or {}
    ).get("issuer")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [f"{f.get('code')} ({f.get('explanation')})" for f in results.get("failure", [])
                if f.get("code") not in UNTRUSTED_CODES]  # fmt: skip
    if failures or store.get("validation_state") == "Invalid":
        return Verdict(str(path), "tampered", generation, signer, failures or ["invalid"])
    outcome = "trusted" if store.get("validation_state") == "Trusted" else "untrusted"
    return Verdict(str(path), outcome, generation, signer)

"""C2PA Content Credentials: a signed manifest in every output, when the user has a certificate.

The label and the watermark (:mod:`.metadata`, :mod:`.watermark`) are always written; a C2PA manifest is
added only with a signing certificate chain and its private key (``--c2pa-cert`` / ``--c2pa-key``, or
``$LIVEPORTRAIT_C2PA_CERT`` / ``$LIVEPORTRAIT_C2PA_KEY``; ``C2paSettings`` in Python). Without them
nothing is signed and nothing is invented. The manifest says:

* a ``c2pa.created`` action with digitalSourceType ``trainedAlgorithmicMedia``;
* the software agent: liveportrait, its version, the backend and the precision that ran the networks;
* the source and the driving as ``inputTo`` ingredients, identified by the SHA-256 of their files
  (``instance_id`` ``sha256:...``; pixels given in memory: of their RGB bytes). No thumbnail of any picture
  goes in (neither of the inputs nor of the output), and the run id of the watermark is a parameter.

The writers of :mod:`liveportrait.media` sign through the run's :class:`~liveportrait.provenance.Stamp`
(``Stamp(c2pa=ContentCredentials(...))``): the finished temporary file is signed before it is renamed into
place, so a signing failure leaves no file. The C2PA SDK (c2pa-python 0.38, the ``c2pa`` extra) signs
mp4/m4v/mov, jpg, png (each frame of a png folder too), gif, webp and tiff; it cannot sign mkv or bmp, which
keep the label and the watermark only. Nothing is contacted: no time-stamp authority unless ``tsa_url``
(``--c2pa-tsa URL``), no OCSP, no remote manifests.

Credentials are checked when a :class:`C2paSettings` is made, before any network loads: files there and
readable, PEM, the certificate within its validity, the key its own, not self-signed, and a trial signature
of a tiny picture in memory (what the SDK refuses, such as a missing extended key usage). A problem is one
:class:`~liveportrait.errors.CredentialsError` (exit code 8).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CredentialsError, OutputError

log = logging.getLogger(__name__)

ENV_CERT = "LIVEPORTRAIT_C2PA_CERT"
ENV_KEY = "LIVEPORTRAIT_C2PA_KEY"
ENV_TSA = "LIVEPORTRAIT_C2PA_TSA"

CREATED = "c2pa.created"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RUN_ID_PARAMETER = "org.liveportrait.run_id"

# output suffix -> the MIME type the SDK signs it as (checked with c2pa-python 0.38.1, SDK 0.91.3)
SIGNABLE = {
    ".mp4": "video/mp4", ".m4v": "video/x-m4v", ".mov": "video/quicktime",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
    ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
}
UNSIGNABLE = (".mkv", ".bmp")  # what our writers make that the SDK cannot carry a manifest in

# the SDK's settings for every read and write: nothing fetched, no thumbnails
SDK_SETTINGS = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}

_MISMATCH = ("mismatch",)  # status codes that mean the bytes (or the manifest) changed after signing


def _sdk():
    """The c2pa module, or a MissingExtraError saying how to install it."""
    from ..errors import require_extra

    require_extra("c2pa", ("c2pa",), "C2PA Content Credentials")
    import c2pa

    return c2pa


def _context(c2pa):
    return c2pa.Context(settings=c2pa.Settings.from_dict(SDK_SETTINGS))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__


# ------------------------------------------------------------------------------------------
# settings: the user's credentials, checked


@dataclass(frozen=True)
class C2paSettings:
    """A signing certificate chain (PEM: the signing certificate first, then the CAs that issued it, not
    necessarily the root) and its private key (PEM, unencrypted), and an optional RFC 3161 time-stamp
    authority. Checked on creation (see the module docstring); the files are read again for each signature,
    so the key is held by no object that travels (a pickled config, a Ray task)."""

    cert: Path
    key: Path
    tsa_url: str | None = None
    algorithm: str = field(default="", compare=False)  # from the key: es256, es384, es512, ps256 or ed25519
    signer: str = field(default="", compare=False)  # the certificate's subject, for messages

    def __post_init__(self):
        object.__setattr__(self, "cert", Path(self.cert).expanduser())
        object.__setattr__(self, "key", Path(self.key).expanduser())
        if self.tsa_url is not None and not str(self.tsa_url).startswith(("http://", "https://")):
            raise CredentialsError(f"--c2pa-tsa must be an http(s) URL, got {self.tsa_url!r}")
        self.check()

    @classmethod
    def from_options(cls, cert: str | os.PathLike | None = None, key: str | os.PathLike | None = None,
                     tsa_url: str | None = None, environ=None) -> "C2paSettings | None":
        """Settings from command-line values, else ``$LIVEPORTRAIT_C2PA_CERT``/``_KEY``/``_TSA``; None when
        neither a certificate nor a key is given (nothing is signed); one without the other is an error."""
        env = os.environ if environ is None else environ
        cert = cert or env.get(ENV_CERT) or None
        key = key or env.get(ENV_KEY) or None
        tsa_url = tsa_url or env.get(ENV_TSA) or None
        if cert is None and key is None:
            if tsa_url:
                raise CredentialsError("--c2pa-tsa needs --c2pa-cert and --c2pa-key")
            return None
        if cert is None or key is None:
            missing = "--c2pa-cert (or $" + ENV_CERT + ")" if cert is None else "--c2pa-key (or $" + ENV_KEY + ")"
            raise CredentialsError(f"C2PA signing needs a certificate chain and its key: {missing} is missing")
        return cls(Path(cert), Path(key), tsa_url)

    @classmethod
    def coerce(cls, value) -> "C2paSettings | None":
        """What the Python API takes as ``c2pa=``: None (no signing), a C2paSettings, a (cert, key) or
        (cert, key, tsa_url) pair of paths, or a dict with ``cert``, ``key`` and optionally ``tsa_url``."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"cert", "key", "tsa_url"}
            if unknown or not {"cert", "key"} <= set(value):
                raise CredentialsError(f"c2pa= takes a dict with cert, key and optionally tsa_url, got "
                                       f"{sorted(value)}")
            return cls(value["cert"], value["key"], value.get("tsa_url"))
        if isinstance(value, (tuple, list)) and len(value) in (2, 3):
            return cls(*value)
        raise CredentialsError(f"c2pa= takes None, C2paSettings(cert, key), (cert, key) or a dict, got "
                               f"{type(value).__name__}")

    def read(self) -> tuple[bytes, bytes]:
        """(certificate chain, key) as PEM bytes; CredentialsError when a file is missing or unreadable."""
        return _read(self.cert, "certificate chain"), _read(self.key, "private key")

    def check(self) -> "C2paSettings":
        """Raise CredentialsError unless these credentials can sign now (reads both files, signs a tiny
        picture in memory without the time-stamp authority). Returns self."""
        c2pa = _sdk()
        certs_pem, key_pem = self.read()
        certs, key = _parse(self.cert, certs_pem, self.key, key_pem)
        leaf = certs[0]
        alg = _algorithm(self.key, key)
        _check_validity(self.cert, leaf)
        if _public_der(leaf.public_key()) != _public_der(key.public_key()):
            raise CredentialsError(f"{self.key}: this private key does not belong to the certificate in {self.cert}",
                                   "the private key does not belong to the certificate")
        if leaf.issuer == leaf.subject:
            why = ("the certificate is self-signed; C2PA needs one issued by a certificate authority (for tests, "
                   "a throwaway CA: see the README)")
            raise CredentialsError(f"{self.cert}: {why}", why)
        object.__setattr__(self, "algorithm", alg)
        object.__setattr__(self, "signer", leaf.subject.rfc4514_string())
        try:
            _sign_bytes(c2pa, _trial_manifest(), "image/png", _TINY_PNG, certs_pem, key_pem, alg, None)
        except c2pa.C2paError as exc:
            why = f"the C2PA SDK refuses these credentials ({_first_line(exc)})"
            raise CredentialsError(f"{self.cert}: {why}", why) from None
        return self


def _read(path: Path, what: str) -> bytes:
    if not path.exists():
        raise CredentialsError(f"{path}: C2PA {what} not found", f"the C2PA {what} file is missing")
    if path.is_dir():
        raise CredentialsError(f"{path}: the C2PA {what} is a folder, not a file", f"the C2PA {what} is a folder")
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = f"the C2PA {what} cannot be read ({(exc.strerror or str(exc)).lower()})"
        raise CredentialsError(f"{path}: {why}", why) from None
    if not data.strip():
        raise CredentialsError(f"{path}: the C2PA {what} file is empty", f"the C2PA {what} file is empty")
    return data


def _parse(cert_path: Path, certs_pem: bytes, key_path: Path, key_pem: bytes):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(certs_pem)
    except ValueError:
        why = "the C2PA certificate chain is not PEM certificates (-----BEGIN CERTIFICATE-----)"
        raise CredentialsError(f"{cert_path}: {why}", why) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        why = "the C2PA private key is encrypted; give it unencrypted (and keep the file private)"
        raise CredentialsError(f"{key_path}: {why}", why) from None
    except (ValueError, Exception) as exc:  # cryptography raises ValueError, or UnsupportedAlgorithm
        why = f"the C2PA private key is not a PEM private key ({_first_line(exc)})"
        raise CredentialsError(f"{key_path}: {why}", why) from None
    return certs, key


def _algorithm(key_path: Path, key) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name)
        if alg:
            return alg
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    why = "the C2PA private key is of a kind C2PA does not sign with (EC P-256/384/521, RSA or Ed25519 are)"
    raise CredentialsError(f"{key_path}: {why}", why)


def _check_validity(cert_path: Path, leaf) -> None:
    now = datetime.now(timezone.utc)
    if now < leaf.not_valid_before_utc:
        why = f"the C2PA certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        raise CredentialsError(f"{cert_path}: {why}", why)
    if now > leaf.not_valid_after_utc:
        why = f"the C2PA certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        raise CredentialsError(f"{cert_path}: {why}", why)


def _public_der(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _png(width: int = 8, height: int = 8) -> bytes:
    """A tiny grey PNG, made here (the trial signature signs it in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


_TINY_PNG = _png()


# ------------------------------------------------------------------------------------------
# one run's credentials: what its manifests say


@dataclass(frozen=True)
class ContentCredentials:
    """What every output of one run is signed with: the settings, the software agent and the ingredients.
    Give it to the writers through ``Stamp(c2pa=...)``; make it with :func:`content_credentials`."""

    settings: C2paSettings
    software_agent: dict
    ingredients: tuple[dict, ...] = ()

    def manifest(self, title: str, run_id: str | None = None) -> dict:
        return _manifest(title, self.software_agent, self.ingredients, run_id)

    def sign(self, tmp: Path, final: Path, run_id: str | None = None) -> bool:
        """Sign the finished file ``tmp`` in place as ``final`` will be named (its suffix says the format).
        False (and a warning) for a format the SDK cannot sign; OutputError when signing fails."""
        mime = SIGNABLE.get(final.suffix.lower())
        if mime is None:
            log.warning("%s: C2PA cannot sign %s files; it keeps the label and the watermark only", final.name,
                        final.suffix or "extension-less")
            return False
        from ..files import discard, temp_path_beside

        c2pa = _sdk()
        try:
            certs_pem, key_pem = self.settings.read()
        except CredentialsError as exc:
            raise OutputError(f"cannot sign {final} with C2PA: {exc.reason}") from None
        signed = temp_path_beside(final, tmp.suffix)
        try:
            with open(tmp, "rb") as src, open(signed, "w+b") as dst:
                _sign_stream(c2pa, self.manifest(final.name, run_id), mime, src, dst, certs_pem, key_pem,
                             self.settings.algorithm, self.settings.tsa_url)
            os.replace(signed, tmp)
        except c2pa.C2paError as exc:
            raise OutputError(f"cannot sign {final} with C2PA: {_first_line(exc)}") from None
        finally:
            discard(signed)
        return True


def _signer(c2pa, certs_pem: bytes, key_pem: bytes, alg: str, tsa_url: str | None):
    info = c2pa.C2paSignerInfo(alg.encode(), certs_pem, key_pem, tsa_url)
    return c2pa.Signer.from_info(info)


def _sign_stream(c2pa, manifest: dict, mime: str, src, dst, certs_pem, key_pem, alg, tsa_url) -> None:
    signer = _signer(c2pa, certs_pem, key_pem, alg, tsa_url)
    try:
        with c2pa.Builder(manifest, context=_context(c2pa)) as builder:
            builder.sign(signer, mime, src, dst)
    finally:
        signer.close()


def _sign_bytes(c2pa, manifest, mime, data: bytes, certs_pem, key_pem, alg, tsa_url) -> bytes:
    out = io.BytesIO()
    _sign_stream(c2pa, manifest, mime, io.BytesIO(data), out, certs_pem, key_pem, alg, tsa_url)
    return out.getvalue()


def _manifest(title: str, agent: dict, ingredients=(), run_id: str | None = None) -> dict:
    from .. import __version__

    parameters: dict = {}
    if ingredients:
        parameters["ingredientIds"] = [i["label"] for i in ingredients]
    if run_id:
        parameters[RUN_ID_PARAMETER] = run_id
    action = {"action": CREATED, "digitalSourceType": DIGITAL_SOURCE_TYPE, "softwareAgent": dict(agent)}
    if parameters:
        action["parameters"] = parameters
    return {
        "claim_generator_info": [{"name": "liveportrait", "version": __version__}],
        "title": title,
        "ingredients": [dict(i) for i in ingredients],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def _trial_manifest() -> dict:
    return _manifest("check.png", {"name": "liveportrait"})


def sign_output(stamp, tmp: Path, final: Path) -> bool:
    """What the writers call on a finished temporary file before its rename: sign it when the stamp has
    credentials (True), else leave it as it is (False)."""
    credentials = getattr(stamp, "c2pa", None)
    if credentials is None:
        return False
    return credentials.sign(Path(tmp), Path(final), getattr(stamp, "run_id", None))


# ------------------------------------------------------------------------------------------
# ingredients


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _mime_of(path: Path) -> str:
    import mimetypes

    if path.name.endswith(".lpt.npz"):
        return "application/x-liveportrait-template"
    return SIGNABLE.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def ingredient(role: str, value, label: str | None = None) -> dict:
    """An ``inputTo`` ingredient for an input: a file (by the SHA-256 of its bytes), an RGB picture in memory
    (of its pixels' bytes), a :class:`~liveportrait.plan.MediaInput`, or anything else (named, not hashed)."""
    import numpy as np

    entry = {"relationship": "inputTo", "label": label or role, "description": role}
    path = getattr(value, "path", None) if not isinstance(value, (str, os.PathLike)) else Path(value)
    if path is None and hasattr(value, "kind"):  # a MediaInput held in memory
        value = getattr(value, "image", None) if getattr(value, "image", None) is not None else value
    if path is not None and Path(path).is_file():
        path = Path(path)
        entry.update(title=path.name, format=_mime_of(path), instance_id=f"sha256:{file_sha256(path)}")
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h = hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()
        entry.update(title=f"{role} picture in memory", format="application/octet-stream",
                     instance_id=f"sha256:{h}")
        entry["description"] = f"{role} (sha256 of its {a.shape} {a.dtype} pixels)"
    else:
        entry.update(title=f"{role} given in memory", format="application/octet-stream")
        entry["description"] = f"{role} (frames or motion given in memory: not hashed)"
    return entry


def content_credentials(settings: C2paSettings | None, *, backend: str = "", precision: str = "",
                        source=None, drivings=()) -> ContentCredentials | None:
    """A run's credentials (None without settings): the agent and the source and driving(s) as ingredients."""
    from .. import __version__

    if settings is None:
        return None
    agent = {"name": "liveportrait", "version": __version__}
    if backend:
        agent["backend"] = str(backend)
    if precision:
        agent["precision"] = str(precision)
    items = []
    if source is not None:
        items.append(ingredient("source", source))
    drivings = [d for d in (drivings or ()) if d is not None]
    for i, d in enumerate(drivings):
        items.append(ingredient("driving", d, "driving" if len(drivings) == 1 else f"driving{i}"))
    return ContentCredentials(settings, agent, tuple(items))


def for_plan(config, plan) -> ContentCredentials | None:
    """The credentials of a pipeline's run: ``config.c2pa`` with its backend and precision, and the plan's
    source and drivings as ingredients (None when the config has no C2PA settings)."""
    settings = getattr(config, "c2pa", None)
    if settings is None:
        return None
    return content_credentials(settings, backend=config.backend, precision=config.precision,
                               source=getattr(plan, "src", None), drivings=getattr(plan, "drivings", ()))


# ------------------------------------------------------------------------------------------
# reading


def read_manifest(path: str | os.PathLike) -> dict:
    """What ``verify`` reports about a file's C2PA manifest, as a dict (never raises for a readable file):

    ``checked`` (False when c2pa-python is not installed), ``present``, ``validation_state`` (Valid, Invalid or
    Trusted), ``changed_after_signing``, ``signer`` (the certificate's common name, issuer, algorithm and the
    signing time if time-stamped), ``actions`` and ``digital_source_type``, ``software_agent``, ``ingredients``
    (title, relationship, hash), ``run_id``, ``status`` (the failure codes) and ``note`` (one line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    out: dict = {"checked": False, "present": False, "signable": suffix not in UNSIGNABLE}
    try:
        c2pa = _sdk()
    except Exception:
        out["note"] = "c2pa-python (the c2pa extra) is not installed: the C2PA manifest was not checked"
        return out
    import json

    out["checked"] = True
    mime = SIGNABLE.get(suffix)
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader(mime, f, context=_context(c2pa)) if mime else c2pa.Reader(f, context=_context(c2pa))
            with reader:
                report = json.loads(reader.json())
    except c2pa.C2paError as exc:
        name = type(exc).__name__
        if "ManifestNotFound" in name or "NotSupported" in name or "no JUMBF" in str(exc):
            out["note"] = ("no C2PA manifest: this format cannot carry one" if not out["signable"]
                           else "no C2PA manifest")
        else:
            out["note"] = f"no readable C2PA manifest ({_first_line(exc)})"
        return out
    active = report.get("manifests", {}).get(report.get("active_manifest") or "", {})
    failures = [s.get("code", "") for s in (report.get("validation_results", {}).get("activeManifest", {})
                                            .get("failure", []))]
    if not failures:
        failures = [s.get("code", "") for s in report.get("validation_status", []) or []]
    state = report.get("validation_state") or ("Invalid" if failures else "Valid")
    actions = []
    for assertion in active.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += assertion.get("data", {}).get("actions", [])
    created = next((a for a in actions if a.get("action") == CREATED), actions[0] if actions else {})
    sig = active.get("signature_info", {}) or {}
    out.update(
        present=True,
        validation_state=state,
        changed_after_signing=any(m in code for code in failures for m in _MISMATCH),
        trusted=state == "Trusted",
        signer={"common_name": sig.get("common_name"), "issuer": sig.get("issuer"), "algorithm": sig.get("alg"),
                "time": sig.get("time")},
        claim_generator=[g.get("name") for g in active.get("claim_generator_info", [])],
        actions=[a.get("action") for a in actions],
        digital_source_type=created.get("digitalSourceType"),
        software_agent=created.get("softwareAgent"),
        run_id=(created.get("parameters") or {}).get(RUN_ID_PARAMETER),
        ingredients=[{"title": i.get("title"), "relationship": i.get("relationship"),
                      "role": i.get("description"), "hash": i.get("instance_id")}
                     for i in active.get("ingredients", [])],
        status=failures,
    )
    return out


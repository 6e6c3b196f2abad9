"""C2PA Content Credentials: with a certificate chain and key, every output of ``animate`` (mp4, jpg, png, a png
folder, gif), the API's ``save`` and ``export_to_video``, ``serve`` and ``batch`` carries a signed manifest (a
``c2pa.created`` action, digitalSourceType trainedAlgorithmicMedia, liveportrait's version, backend and precision,
the source and driving by hash) that reads back Valid; one byte changed in the media data makes ``verify`` say
the manifest is invalid; a re-encoded file has no manifest but keeps the watermark, and ``verify`` says so; bad
credentials (missing, unreadable, not PEM, expired, a key of another certificate, self-signed, a key without a
certificate) are one line and exit code 8 from the real command line, before any network loads; a signing failure
leaves no file. Tiny networks; one render per output kind, shared by the checks.

The signing credentials are the C2PA SDK's public test ones (../shared/c2pa-test) and throwaway chains made here
with ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module

HOW = "bash scripts/install.sh c2pa"
require_module("c2pa", HOW)
require_module("cryptography", "bash scripts/install.sh dev")

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
FAST = ["--max-dim", "256", "-q", "--model-config", "tiny"]


# ---------------------------------------------------------------------------------------------------------
# credentials


@pytest.fixture(scope="module")
def creds(shared_dir) -> tuple[Path, Path]:
    """The SDK's public test chain and key (known to sign offline with c2pa-python 0.38)."""
    d = shared_dir / "c2pa-test"
    cert, key = d / "es256_certs.pem", d / "es256_private.key"
    if not (cert.is_file() and key.is_file()):
        from tests.conftest import skip_or_fail

        skip_or_fail(f"{d}: the C2PA test credentials are missing")
    return cert, key


def _pem(obj) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "public_bytes") and hasattr(obj, "subject"):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_chain(folder: Path, name: str, *, days_before: int = -1, days_after: int = 30, self_signed: bool = False):
    """A throwaway CA and an end-entity certificate it issued (digitalSignature, emailProtection), as the
    README's recipe makes them: (chain.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def subject(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "liveportrait tests")])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(subject("Throwaway CA")).issuer_name(subject("Throwaway CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=2)).not_valid_after(now + dt.timedelta(days=60))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    issuer, signing_key = (subject("Signer"), key) if self_signed else (ca.subject, ca_key)
    leaf = (x509.CertificateBuilder().subject_name(subject("Signer")).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days_before)).not_valid_after(now + dt.timedelta(days=days_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                           critical=False)
            .sign(signing_key, hashes.SHA256()))
    chain, key_file = folder / f"{name}-chain.pem", folder / f"{name}-key.pem"
    chain.write_bytes(_pem(leaf) + (b"" if self_signed else _pem(ca)))
    key_file.write_bytes(_pem(key))
    return chain, key_file


# ---------------------------------------------------------------------------------------------------------
# inputs and one render per output kind


@pytest.fixture(scope="module")
def inputs(examples_dir, tmp_path_factory) -> dict[str, Path]:
    from tests.test_api import short_clip

    d = tmp_path_factory.mktemp("c2pa_inputs")
    shutil.copy(examples_dir / "source/s0.jpg", d / "photo.jpg")
    shutil.copy(examples_dir / "driving/d30.jpg", d / "smile.jpg")
    short_clip(examples_dir / "driving/d12.mp4", d / "driving.mp4", 4)
    return {p.stem: p for p in d.iterdir()}


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def renders(inputs, tiny_weights, creds, tmp_path_factory) -> dict[str, Path]:
    """``liveportrait animate --c2pa-cert --c2pa-key`` once per output kind (in this process): an mp4 from the
    driving video, a jpg and a png from the driving photo."""
    from liveportrait.cli import main

    out = tmp_path_factory.mktemp("c2pa_renders")
    sign = ["--c2pa-cert", str(creds[0]), "--c2pa-key", str(creds[1]), "--weights", str(tiny_weights)]
    jobs = {"mp4": ("driving", "out.mp4", []), "jpg": ("smile", "still.jpg", []), "png": ("smile", "still.png", [])}
    paths = {}
    for kind, (driving, name, extra) in jobs.items():
        code = main(["animate", "-s", str(inputs["photo"]), "-d", str(inputs[driving]), "-o", str(out / name),
                     "--no-template", *FAST, *sign, *extra])
        assert code == 0, kind
        paths[kind] = out / name
    return paths


def assert_signed(path: Path, source: Path | None = None, driving: Path | None = None, backend: str | None = None):
    """A Valid manifest with the created action, the AI source type, liveportrait as agent, the inputs by hash."""
    from liveportrait import __version__
    from liveportrait.provenance.c2pa import read_manifest

    m = read_manifest(path)
    assert m["present"], (path.name, m)
    assert m["validation_state"] == "Valid", (path.name, m)
    assert m["changed_after_signing"] is False
    assert m["status"] == ["signingCredential.untrusted"], m  # the test CA is no trust anchor: the only finding
    assert m["actions"] == ["c2pa.created"]
    assert m["digital_source_type"] == SOURCE_TYPE
    agent = m["software_agent"]
    assert agent["name"] == "liveportrait" and agent["version"] == __version__, agent
    if backend is not None:
        assert agent["backend"] == backend and agent["precision"] == "fp32", agent
    hashes = {i["role"]: i["hash"] for i in m["ingredients"]}
    if source is not None:
        assert hashes["source"] == sha256(source), m["ingredients"]
    if driving is not None:
        assert hashes["driving"] == sha256(driving), m["ingredients"]
    assert all(i["relationship"] == "inputTo" for i in m["ingredients"])
    return m


def verify_json(path: Path, frames: int = 4) -> dict:
    r = subprocess.run([sys.executable, "-m", "liveportrait.cli", "verify", "--json", "--frames", str(frames),
                        str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------------------------------------
# every output kind


@pytest.mark.parametrize("kind", ["mp4", "jpg", "png"])
def test_every_output_kind_of_animate_is_signed(renders, inputs, kind):
    path = renders[kind]
    assert_signed(path, inputs["photo"], inputs["smile" if kind in ("jpg", "png") else "driving"], backend="fast")
    assert not list(path.parent.glob(".*.part*")), "a temporary file was left"


def test_gif_and_png_frame_folders_are_signed_too(inputs, creds, tmp_path):
    """The writers behind --format gif and png (a folder: every frame a png file) sign as the others do."""
    from liveportrait.media import GifWriter, PngSequenceWriter, read_image
    from liveportrait.provenance import Stamp
    from liveportrait.provenance.c2pa import C2paSettings, content_credentials

    stamp = Stamp(c2pa=content_credentials(C2paSettings(*creds), backend="eager", precision="fp32",
                                           source=inputs["photo"], drivings=[inputs["driving"]]))
    frame = np.ascontiguousarray(read_image(inputs["photo"])[:128, :128])
    with GifWriter(tmp_path / "out.gif", 25, stamp=stamp) as gif, PngSequenceWriter(tmp_path / "frames",
                                                                                     stamp=stamp) as folder:
        for _ in range(2):
            gif.write(frame)
            folder.write(frame)
    for path in [tmp_path / "out.gif", *sorted((tmp_path / "frames").glob("*.png"))]:
        assert_signed(path, inputs["photo"], inputs["driving"], backend="eager")
    assert len(list((tmp_path / "frames").iterdir())) == 2


def test_verify_reports_the_manifest_beside_label_and_watermark(renders, capsys):
    from liveportrait.cli import main

    report = verify_json(renders["mp4"])
    m = report["c2pa"]
    assert report["marked"] and report["watermark"]["found"] and report["metadata"] is not None
    assert m["present"] and m["validation_state"] == "Valid" and m["changed_after_signing"] is False
    assert m["signer"]["common_name"] == "C2PA Signer" and m["signer"]["issuer"] == "C2PA Test Signing Cert"
    assert m["run_id"] == report["watermark"]["run_id"] == report["metadata"]["run_id"]  # one run, three marks
    capsys.readouterr()
    assert main(["verify", "--frames", "4", str(renders["mp4"])]) == 0
    text = capsys.readouterr().out
    assert "c2pa:      C2PA manifest valid (signer not on a trust list)" in text, text
    assert "digitalSourceType trainedAlgorithmicMedia; by liveportrait" in text, text
    assert "signer:    C2PA Signer (issued by C2PA Test Signing Cert, es256)" in text, text


# ---------------------------------------------------------------------------------------------------------
# tampering and re-encoding


def _flip_in(data: bytearray, start: int, end: int) -> None:
    i = start + (end - start) // 2
    data[i] ^= 0xFF


def test_one_byte_changed_in_the_media_data_makes_the_manifest_invalid(renders, tmp_path):
    from liveportrait.provenance.c2pa import read_manifest

    mp4 = bytearray(renders["mp4"].read_bytes())
    mdat = mp4.find(b"mdat")
    size = int.from_bytes(mp4[mdat - 4:mdat], "big")
    _flip_in(mp4, mdat + 4, mdat - 4 + size)  # inside the coded frames
    png = bytearray(renders["png"].read_bytes())
    idat = png.find(b"IDAT")
    _flip_in(png, idat + 4, idat + 4 + int.from_bytes(png[idat - 4:idat], "big"))
    for name, data in (("changed.mp4", mp4), ("changed.png", png)):
        (tmp_path / name).write_bytes(bytes(data))
        m = read_manifest(tmp_path / name)
        assert m["present"] and m["validation_state"] == "Invalid", (name, m)
        assert m["changed_after_signing"] is True
        assert any(code.endswith("Hash.mismatch") for code in m["status"]), m["status"]
    report = verify_json(tmp_path / "changed.mp4")
    assert report["summary"] == "C2PA manifest INVALID: the file changed after it was signed"


def test_a_reencoded_file_has_no_manifest_but_keeps_the_watermark(renders, tmp_path):
    import av

    src, dst = renders["mp4"], tmp_path / "reencoded.mp4"
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:  # what ffmpeg -i out.mp4 -c:v libx264 does
        stream = out.add_stream("libx264", rate=25)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 0:
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    # a re-encode weakens the watermark: every frame is pooled (with 4, its score depended on the run id)
    report = verify_json(dst, frames=48)
    assert report["c2pa"]["checked"] and not report["c2pa"]["present"]
    assert report["watermark"]["found"] and report["marked"]
    assert report["summary"].startswith("no C2PA manifest: this file was not signed, or another tool re-encoded it")
    assert report["summary"].endswith("the invisible watermark is still there"), report["summary"]


# ---------------------------------------------------------------------------------------------------------
# the API, serve and batch


@pytest.fixture(scope="module")
def signing_pipe(tiny_weights, creds):
    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained(str(tiny_weights), model_config="tiny", c2pa=creds, quiet=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_api_save_and_export_to_video_are_signed(inputs, signing_pipe, creds, tmp_path):
    from liveportrait import export_to_video

    pipe = signing_pipe
    result = pipe(str(inputs["photo"]), str(inputs["driving"]), source_max_dim=256).save(tmp_path / "api.mp4")
    assert_signed(result.output, inputs["photo"], inputs["driving"], backend=pipe.compute.backend)
    frames = [np.zeros((64, 64, 3), np.uint8)] * 2  # any frames: the API's export helper signs what it writes
    path = export_to_video(frames, tmp_path / "exported.mp4", c2pa=creds, source=inputs["photo"],
                           driving=inputs["driving"])
    assert_signed(path, inputs["photo"], inputs["driving"])


def test_the_app_signs_its_results(inputs, signing_pipe, tmp_path):
    """What ``liveportrait app --c2pa-cert --c2pa-key`` runs: its pipeline signs, and so do its tabs."""
    from liveportrait.app.backend import AppBackend
    from liveportrait.provenance.c2pa import read_manifest

    backend = AppBackend(signing_pipe, workdir=tmp_path)
    out, is_video = backend.animate(str(inputs["photo"]), str(inputs["smile"]), {"source_max_dim": 256})
    assert not is_video
    assert_signed(out, inputs["photo"], inputs["smile"], backend=signing_pipe.compute.backend)
    edited = backend._write_picture(np.zeros((64, 64, 3), np.uint8), "edit.png")  # the Edit tab's pictures
    m = read_manifest(edited)
    assert m["validation_state"] == "Valid" and m["actions"] == ["c2pa.created"], m
    assert m["digital_source_type"] == SOURCE_TYPE and m["software_agent"]["name"] == "liveportrait"


def test_without_credentials_nothing_is_signed(tmp_path):
    from liveportrait import export_to_image
    from liveportrait.provenance.c2pa import read_manifest

    path = export_to_image(np.zeros((64, 64, 3), np.uint8), tmp_path / "plain.png")
    assert read_manifest(path) == {"checked": True, "present": False, "signable": True, "note": "no C2PA manifest"}


def test_serve_signs_results_and_refuses_submissions_once_its_certificate_is_gone(inputs, tiny_weights, tmp_path):
    require_module("fastapi", "bash scripts/install.sh serve")
    httpx = require_module("httpx", "bash scripts/install.sh serve")
    from tests.serve.conftest import Server, submit, wait_for

    chain, key = make_chain(tmp_path, "server")
    server = Server(tmp_path / "data", tiny_weights, "--c2pa-cert", str(chain), "--c2pa-key", str(key))
    media = {"photo": inputs["photo"], "driving": inputs["smile"]}  # a still result: the quickest job
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = submit(client, media, options={"source_max_dim": 256})
            assert r.status_code == 202, r.text
            job = wait_for(client, r.json()["id"])
            assert job["state"] == "succeeded", job
            result = tmp_path / "result.png"
            result.write_bytes(client.get(f"/v1/jobs/{job['id']}/result").content)
            m = assert_signed(result, inputs["photo"], inputs["smile"])
            assert m["signer"]["common_name"] == "Signer" and m["signer"]["issuer"] == "liveportrait tests"
            # a job cannot name credentials (a file on the server)
            r = submit(client, media, options={"c2pa": {"cert": "/etc/passwd", "key": "/etc/passwd"}})
            assert r.status_code == 422 and "c2pa must be None or C2paSettings" in r.json()["error"], r.text
            key.unlink()  # the key went away while the server runs: refused at submission, nothing queued
            r = submit(client, media, options={"source_max_dim": 256})
            assert r.status_code == 422, r.text
            assert r.json() == {"error": "this server cannot sign results with C2PA: the C2PA private key file is "
                                         "missing", "status": 422}
            assert client.get("/v1/jobs").json()["jobs"][0]["id"] == job["id"]
    finally:
        server.stop()


def test_batch_signs_every_result(inputs, tiny_weights, creds, tmp_path):
    from liveportrait.cli import main

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"source": str(inputs["photo"]), "driving": str(inputs["smile"]),
                                "output": "out/b.jpg", "options": {"source_max_dim": 256}}) + "\n")
    code = main(["batch", str(jobs), "--weights", str(tiny_weights), "--model-config", "tiny", "-q",
                 "--c2pa-cert", str(creds[0]), "--c2pa-key", str(creds[1])])
    assert code == 0
    assert_signed(tmp_path / "out/b.jpg", inputs["photo"], inputs["smile"])


# ---------------------------------------------------------------------------------------------------------
# bad credentials, unsignable formats, signing failures


def _bad_cases(folder: Path, creds: tuple[Path, Path]) -> dict[str, tuple[list[str], str]]:
    good_chain, good_key = make_chain(folder, "good")
    expired_chain, expired_key = make_chain(folder, "expired", days_before=-30, days_after=-1)
    future_chain, future_key = make_chain(folder, "future", days_before=2, days_after=30)
    self_chain, self_key = make_chain(folder, "self", self_signed=True)
    (folder / "garbage.pem").write_text("this is not a certificate\n")
    (folder / "a-folder.pem").mkdir()
    unreadable = folder / "unreadable.pem"
    shutil.copy(good_chain, unreadable)
    unreadable.chmod(0)
    # as root a file without permissions still reads: a folder in the cert's place is unreadable for everyone
    unreadable = unreadable if os.geteuid() != 0 else folder / "a-folder.pem"

    def both(cert, key):
        return ["--c2pa-cert", str(cert), "--c2pa-key", str(key)]

    return {
        "missing": (both(folder / "nope.pem", good_key), "C2PA certificate chain not found"),
        "unreadable": (both(unreadable, good_key), "C2PA certificate chain"),
        "not PEM": (both(folder / "garbage.pem", good_key), "is not PEM certificates"),
        "key as cert": (both(good_key, good_key), "is not PEM certificates"),
        "cert as key": (both(good_chain, good_chain), "is not a PEM private key"),
        "expired": (both(expired_chain, expired_key), "the C2PA certificate expired on"),
        "not yet valid": (both(future_chain, future_key), "the C2PA certificate is not valid before"),
        "key of another certificate": (both(good_chain, creds[1]), "does not belong to the certificate"),
        "self-signed": (both(self_chain, self_key), "the certificate is self-signed"),
        "key without certificate": (["--c2pa-key", str(good_key)], "--c2pa-cert (or $LIVEPORTRAIT_C2PA_CERT) is "
                                                                    "missing"),
    }


def test_bad_credentials_are_one_line_and_exit_code_8_before_any_network_loads(inputs, creds, tmp_path):
    from liveportrait.errors import CredentialsError

    assert CredentialsError.exit_code == 8
    cases = _bad_cases(tmp_path, creds)
    no_weights = ["--weights", str(tmp_path / "no-weights")]  # reaching the networks would be exit code 4
    for name, (flags, message) in cases.items():
        out = tmp_path / f"{name}.mp4"
        cmd = [sys.executable, "-m", "liveportrait.cli", "animate", "-s", str(inputs["photo"]), "-d",
               str(inputs["driving"]), "-o", str(out), *no_weights, *flags]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 8, (name, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (name, r.stderr)
        assert not out.exists() and "Traceback" not in r.stderr
    # the environment variables work the same way, and serve and the app refuse to start
    env = {**os.environ, "LIVEPORTRAIT_C2PA_CERT": str(tmp_path / "expired-chain.pem"),
           "LIVEPORTRAIT_C2PA_KEY": str(tmp_path / "expired-key.pem")}
    for cmd in (["animate", "-s", str(inputs["photo"]), "-d", str(inputs["driving"]), "-o", str(tmp_path / "e.mp4")],
                ["serve", "--data", str(tmp_path / "data"), "--port", "1"], ["app", "--port", "1"]):
        r = subprocess.run([sys.executable, "-m", "liveportrait.cli", *cmd, *no_weights], capture_output=True,
                           text=True, timeout=120, env=env)
        assert r.returncode == 8 and "the C2PA certificate expired on" in r.stderr, (cmd[0], r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # serve stopped before making its job store


def test_unsignable_formats_keep_label_and_watermark_and_verify_says_they_carry_no_manifest(inputs, creds, tmp_path):
    from liveportrait.media import VideoWriter, read_image, write_image
    from liveportrait.provenance import Stamp
    from liveportrait.provenance.c2pa import C2paSettings, content_credentials, read_manifest
    from liveportrait.provenance.verify import verify

    stamp = Stamp(c2pa=content_credentials(C2paSettings(*creds)))
    frame = np.ascontiguousarray(read_image(inputs["photo"])[:256, :256])
    with VideoWriter(tmp_path / "out.mkv", 25, stamp=stamp) as w:
        for _ in range(3):
            w.write(frame)
    write_image(tmp_path / "out.bmp", frame, stamp=stamp)
    for name in ("out.mkv", "out.bmp"):
        report = verify(tmp_path / name, max_frames=3)
        assert report.watermark.found and read_manifest(tmp_path / name)["present"] is False
        assert (report.metadata is not None) == (name == "out.mkv")  # bmp has no room for the label
        assert report.c2pa_summary.startswith(f"no C2PA manifest: {Path(name).suffix} files cannot carry one")


def test_a_signing_failure_leaves_no_file(creds, tmp_path):
    from liveportrait.errors import OutputError
    from liveportrait.media import VideoWriter, write_image
    from liveportrait.provenance import Stamp
    from liveportrait.provenance.c2pa import C2paSettings, content_credentials

    chain, key = make_chain(tmp_path, "gone")
    stamp = Stamp(c2pa=content_credentials(C2paSettings(chain, key)))
    key.write_text("not a key any more\n")  # checked when made; broken before the writers sign
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(OutputError, match="cannot sign .*out.png with C2PA"):
        write_image(tmp_path / "out.png", frame, stamp=stamp)
    with pytest.raises(OutputError, match="cannot sign .*out.mp4 with C2PA"):
        with VideoWriter(tmp_path / "out.mp4", 25, stamp=stamp) as w:
            w.write(frame)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("gone-"))
    assert leftovers == [], leftovers

"""Signed provenance (C2PA), the watermark, and the real-or-generated detector."""

from __future__ import annotations

import gzip
import io
import stat

import numpy as np
import pytest
import torch
from conftest import MNIST_DIR
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.provenance import keys, png, signing, watermark
from ganforge.provenance.verify import verify_files

GENERATION = {"generator_id": "ab" * 32, "run": "demo", "seed": 3, "index": 0, "class": 7}


def _mnist(n: int, offset: int = 0) -> np.ndarray:
    if not MNIST_DIR.exists():
        pytest.skip("MNIST files not beside the checkout")
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return data[offset : offset + n]


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    folder = keys.init_test_keys(tmp_path_factory.mktemp("keys") / "k")
    key = keys.load_signing_key(folder / keys.CERT, folder / keys.KEY)
    return folder, key


@pytest.fixture(scope="module")
def signed(authority):
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    return pixels, signing.sign_png(_png(pixels), GENERATION, authority[1], "x.png")


def _verdict(tmp_path, data: bytes, trust: bytes | None = None, name: str = "f.png"):
    path = tmp_path / name
    path.write_bytes(data)
    return signing.verify(path, trust)


# -- keys ------------------------------------------------------------------------------------
def test_test_keys_are_owner_only_marked_untrusted_and_not_replaced(authority):
    folder, key = authority
    assert stat.S_IMODE((folder / keys.KEY).stat().st_mode) == 0o600
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((folder / keys.CA).read_bytes())
    assert "UNTRUSTED" in ca.subject.rfc4514_string()
    assert b"PRIVATE KEY" in key.key and key.chain.count(b"BEGIN CERTIFICATE") == 2
    with pytest.raises(GanforgeError, match="already holds keys"):
        keys.init_test_keys(folder)


def test_keys_are_never_written_into_a_run_folder(uncond_run, monkeypatch):
    with pytest.raises(GanforgeError, match="run folder"):
        keys.init_test_keys(uncond_run / "keys")
    monkeypatch.chdir(uncond_run / "samples")  # a relative path from inside the run
    with pytest.raises(GanforgeError, match="run folder"):
        keys.init_test_keys("keys")
    assert not (uncond_run / "keys").exists() and not (uncond_run / "samples" / "keys").exists()


def test_half_a_key_pair_is_refused(authority):
    with pytest.raises(GanforgeError, match="both --cert and --key"):
        keys.load_signing_key(authority[0] / keys.CERT, None)


# -- sign and verify ---------------------------------------------------------------------------
def test_sign_verify_round_trip_untrusted_then_trusted(tmp_path, authority, signed):
    pixels, data = signed
    verdict = _verdict(tmp_path, data)
    assert verdict.outcome == "untrusted" and verdict.exit_code == 3
    assert verdict.generation == GENERATION
    trusted = _verdict(tmp_path, data, (authority[0] / keys.CA).read_bytes())
    assert trusted.outcome == "trusted" and trusted.exit_code == 0
    # The manifest does not change the pixels.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_a_wrong_trust_anchor_leaves_the_signer_untrusted(tmp_path, signed):
    other = keys.init_test_keys(tmp_path / "other")
    verdict = _verdict(tmp_path, signed[1], (other / keys.CA).read_bytes())
    assert verdict.outcome == "untrusted"


def test_one_changed_pixel_is_tampered(tmp_path, signed):
    pixels, data = signed
    changed = pixels.copy()
    changed[5, 5] ^= 1
    verdict = _verdict(tmp_path, png.with_pixels(data, changed))
    assert verdict.outcome == "tampered" and verdict.exit_code == 5
    assert any("dataHash" in f for f in verdict.failures)


def test_a_changed_seed_in_the_manifest_is_tampered(tmp_path, signed):
    manifest = bytearray(png.manifest_chunk(signed[1]))
    at = manifest.find(b"seed")
    assert at > 0 and manifest[at + 4] == GENERATION["seed"]  # CBOR small int
    manifest[at + 4] = 4
    verdict = _verdict(tmp_path, png.with_manifest(signed[1], bytes(manifest)))
    assert verdict.outcome == "tampered"


def test_a_manifest_moved_to_another_image_is_tampered(tmp_path, authority, signed):
    other = _png(np.zeros((28, 28), np.uint8))
    verdict = _verdict(tmp_path, png.with_manifest(other, png.manifest_chunk(signed[1])))
    assert verdict.outcome == "tampered"


def test_resaved_without_the_manifest_is_unsigned(tmp_path, signed):
    resaved = _png(np.asarray(Image.open(io.BytesIO(signed[1]))))
    assert _verdict(tmp_path, resaved).outcome == "unsigned"


def test_bad_trust_anchors_are_the_users_error_not_tampering(tmp_path, signed):
    (tmp_path / "f.png").write_bytes(signed[1])
    with pytest.raises(GanforgeError, match="trust anchors"):
        verify_files([tmp_path / "f.png"], trust=b"not a certificate")


def test_a_truncated_file_is_tampered_and_the_others_still_checked(tmp_path, signed):
    (tmp_path / "cut.png").write_bytes(signed[1][:3000])
    (tmp_path / "tiny.png").write_bytes(_png(np.zeros((3, 3), np.uint8)))
    (tmp_path / "good.png").write_bytes(signed[1])
    cut, tiny, good = verify_files([tmp_path / n for n in ("cut.png", "tiny.png", "good.png")])
    assert cut.outcome == "tampered" and "unreadable" in cut.line()
    assert tiny.outcome == "unsigned" and "unreadable" in tiny.line()
    assert good.outcome == "untrusted"


def test_a_corrupt_manifest_is_a_clear_verdict_not_a_crash(tmp_path, signed):
    garbage = png.with_manifest(signed[1], b"\x00\x00\x00\x10jumbnot-a-manifest" * 3)
    verdict = _verdict(tmp_path, garbage)
    assert verdict.outcome == "tampered" and verdict.failures
    assert "TAMPERED" in verdict.line()


def test_other_images_are_unsigned_and_non_images_one_clear_error(tmp_path, signed):
    buf = io.BytesIO()
    Image.open(io.BytesIO(signed[1])).save(buf, format="JPEG", quality=75)
    assert _verdict(tmp_path, buf.getvalue(), name="f.jpg").outcome == "unsigned"
    buf = io.BytesIO()
    Image.open(io.BytesIO(signed[1])).save(buf, format="BMP")
    assert _verdict(tmp_path, buf.getvalue(), name="f.bmp").outcome == "unsigned"
    with pytest.raises(GanforgeError, match="not an image"):
        _verdict(tmp_path, b"GIF89a...")


# -- watermark --------------------------------------------------------------------------------
def test_watermark_round_trip_on_random_payloads():
    images = _mnist(20)
    payloads = np.random.default_rng(1).integers(0, 2**watermark.BITS, len(images))
    for image, payload in zip(images, payloads, strict=True):
        marked = watermark.embed(image[None], int(payload))[0]
        reading = watermark.extract(marked)
        assert reading.payload == payload and reading.found
        assert watermark.psnr(image[None], marked[None])[0] > 30


def test_watermark_survives_png_and_jpeg_90_in_color_too():
    rgb = np.stack([_mnist(4)] * 3, axis=-1)
    rgb[..., 0] //= 2  # not gray
    marked = watermark.embed(rgb, 0xBEEF)
    for image in marked:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=90)
        reading = watermark.extract(np.asarray(Image.open(buf)))
        assert watermark.bit_errors(reading.payload, 0xBEEF) <= 1


def test_real_images_without_a_mark_are_not_read_as_marked():
    readings = [watermark.extract(image) for image in _mnist(300, offset=1000)]
    assert sum(r.found for r in readings) <= 3  # <= 1%
    assert sum(r.matches(0xBEEF) for r in readings) <= 3


def test_watermark_refuses_bad_input():
    with pytest.raises(GanforgeError, match="uint8"):
        watermark.embed(np.zeros((1, 28, 28), np.float32), 1)
    with pytest.raises(GanforgeError, match="payload"):
        watermark.embed(np.zeros((1, 28, 28), np.uint8), 2**watermark.BITS)
    with pytest.raises(GanforgeError, match="too small"):
        watermark.extract(np.zeros((3, 3), np.uint8))


# -- the command line ----------------------------------------------------------------------------
def test_sample_sign_watermark_and_verify_exit_codes(tmp_path, uncond_run, cli_env, cli_ok):
    env = cli_env | {"GANFORGE_KEYS": str(tmp_path / "keys")}
    made = cli_ok(["keys", "init"], env, tmp_path)
    cli_ok(["sample", uncond_run, "-n", "3", "--out", tmp_path / "out", "--sign",
            "--watermark"], env, tmp_path)  # fmt: skip
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == 3
    import sys
    from subprocess import run

    def verify(*args):
        return run([sys.executable, "-m", "ganforge", "verify", *map(str, args)], env=env,
                   capture_output=True, text=True, cwd=tmp_path)  # fmt: skip

    assert verify(*files).returncode == 3  # the test authority is not trusted
    assert verify(*files, "--trust", tmp_path / "keys" / "ca.pem").returncode == 0
    resaved = tmp_path / "resaved.png"
    Image.open(files[0]).save(resaved)
    proc = verify(resaved, "--expect", uncond_run)
    assert proc.returncode == 4 and "unsigned" in proc.stdout
    # Keys stay out of the run folder and of what the commands print.
    for text in (made.stdout, proc.stdout):
        assert "PRIVATE KEY" not in text
    for path in [*uncond_run.rglob("*"), *(tmp_path / "out").rglob("*")]:
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes()


def test_sign_without_keys_is_one_clear_error_before_any_work(tmp_path, uncond_run, cli_env,
                                                              one_line_error):  # fmt: skip
    import sys
    from subprocess import run

    env = cli_env | {"GANFORGE_KEYS": str(tmp_path / "none")}
    args = ["sample", str(uncond_run), "--out", str(tmp_path / "o"), "--sign"]
    proc = run([sys.executable, "-m", "ganforge", *args], env=env, capture_output=True, text=True)
    one_line_error(proc, "keys init")
    assert not (tmp_path / "o").exists()


# -- the detector ----------------------------------------------------------------------------------
def test_calibrated_threshold_separates_held_out_scores():
    from ganforge.detect.training import calibrate, scores

    probs = torch.tensor([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    threshold = calibrate(probs, labels)
    assert 0.35 < threshold < 0.6
    assert scores(probs, labels, threshold) == {"accuracy": 1.0, "average_precision": 1.0}
    # A miscalibrated detector (all scores low): 0.5 calls everything real, the calibrated
    # threshold still splits them.
    low = probs / 10
    assert scores(low, labels)["accuracy"] == 0.5
    assert scores(low, labels, calibrate(low, labels))["accuracy"] == 1.0
    # Saturated scores tie; the threshold never cuts through a tie.
    for p, y, best in (([0.1, 0.2, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], 5 / 6),
                       ([0, 0, 0, 0.9], [0, 1, 0, 1], 0.75),
                       ([1.0, 1.0], [0, 0], 1.0)):  # fmt: skip
        p, y = torch.tensor(p), torch.tensor(y)
        assert scores(p, y, calibrate(p, y))["accuracy"] == pytest.approx(best)


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"images": 0}, "images must be"), ({"epochs": float("nan")}, "epochs and lr"),
     ({"lr": float("inf")}, "epochs and lr"), ({"batch_size": 0}, "batch_size"),
     ({"held_out": 1.0}, "held_out"), ({"seed": -1}, "seed"),
     ({"network": "nope"}, "unknown classifier network")],
)  # fmt: skip
def test_detector_settings_are_refused_in_one_line(bad, message, tmp_path, uncond_run):
    from ganforge.detect import DetectorConfig, train_detector

    with pytest.raises(GanforgeError, match=message):
        train_detector(tmp_path / "d", [uncond_run], DetectorConfig(**bad), progress=False)
    assert not (tmp_path / "d").exists()


def test_detector_beats_chance_on_a_toy_generator(tmp_path, uncond_run):
    from ganforge.detect import DetectorConfig, load_detector, train_detector
    from ganforge.detect.training import generated_images, real_images

    config = DetectorConfig(network="mlp", images=400, epochs=4, batch_size=32,
                            dataset="digits")  # fmt: skip
    result = train_detector(tmp_path / "det", [uncond_run], config, device="cpu",
                            download=False, progress=False)  # fmt: skip
    assert result.held_out["accuracy"] > 0.8
    detector = load_detector(tmp_path / "det")
    assert detector.threshold == pytest.approx(result.threshold)
    real = real_images("digits", "test", 200, 1, download=False)
    fake = generated_images(uncond_run, 200, 12345)
    measured = detector.measure(real, fake)
    assert measured["accuracy"] > 0.75 and measured["average_precision"] > 0.8
    with pytest.raises(GanforgeError, match="already holds"):
        train_detector(tmp_path / "det", [uncond_run], config, progress=False)


def test_detect_train_then_detect_files_from_the_command_line(tmp_path, uncond_run, cli_env,
                                                              cli_ok, one_line_error):  # fmt: skip
    import json
    import subprocess
    import sys

    cli_ok(["detect", "train", uncond_run, "--out", tmp_path / "det", "--dataset", "digits",
            "--network", "mlp", "--images", "200", "--epochs", "2", "--batch-size", "32",
            "--device", "cpu", "--no-download", "--quiet"], cli_env, tmp_path)  # fmt: skip
    cli_ok(["sample", uncond_run, "-n", "4", "--out", tmp_path / "pngs"], cli_env, tmp_path)
    proc = cli_ok(["detect", "--model", tmp_path / "det", tmp_path / "pngs", "--json",
                   tmp_path / "scores.json", "--device", "auto"], cli_env, tmp_path)  # fmt: skip
    rows = json.loads((tmp_path / "scores.json").read_text())
    assert len(rows) == 4 and all(0 <= r["p_generated"] <= 1 for r in rows)
    assert "of 4 called generated" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "ganforge", "detect", "--model",
                          str(tmp_path / "det"), str(tmp_path / "nothing.png")], env=cli_env,
                         capture_output=True, text=True)  # fmt: skip
    one_line_error(bad, "does not exist")

"""The web explorer: its API, its errors, and the page in a real browser (Debian's
Chromium driven by Playwright; .ci/run installs both when missing)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.inside.explorer import Explorer, bind, make_app
from ganforge.sampling import load_generator


@pytest.fixture(scope="module")
def explorer(uncond_run) -> Explorer:
    return Explorer(load_generator(uncond_run), probe_samples=100, probe_steps=20)


def _pixels(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L")).astype(int)


def test_the_api_renders_and_refuses_bad_requests(explorer):
    info = explorer.info()
    assert [layer["name"] for layer in info["layers"]] == ["project"]
    assert info["image_size"] == 8 and "sefa 1" in info["directions"]
    plain = explorer.render({"seed": 2})
    assert _pixels(plain["image"]).shape == (8, 8) and plain["ms"] >= 0
    assert plain == {**explorer.render({"seed": 2}), "ms": plain["ms"]}  # deterministic
    walked = explorer.render({"seed": 2, "walk": {"sefa 1": 3}})
    assert not np.array_equal(_pixels(walked["image"]), _pixels(plain["image"]))
    client = make_app(explorer).test_client()
    for body, fragment in [
        ({"seed": -1}, "seed"), ({"seed": "x"}, "seed"), ({"walk": {"nope": 1}}, "direction"),
        ({"walk": {"sefa 1": 1e9}}, "between"), ({"off": {"up9": [1]}}, "up9"),
        ({"off": {"project": [99]}}, "no unit 99"), ({"off": {"project": ["a"]}}, "whole"),
        ({"strokes": [{"layer": "project", "units": [0], "mode": "insert", "mask": "01"}]},
         "64 characters"),
        ({"strokes": [{"layer": "project", "units": [0], "mode": "blur", "mask": "0" * 64}]},
         "inserts or removes"),
        ({"class": 3}, "conditional"), ([1, 2], "JSON object"), ({"off": [1]}, "'off'"),
        ({"strokes": 5}, "'strokes'"), ({"strokes": [{}] * 201}, "at most 200"),
        ({"strokes": [{"layer": ["x"], "units": [0], "mode": "insert", "mask": "0" * 64}]},
         "no feature-map layer"),
    ]:  # fmt: skip
        reply = client.post("/api/render", json=body)
        assert reply.status_code == 400, body
        error = reply.get_json()["error"]
        assert fragment in error and "\n" not in error, (body, error)
    # Only JSON, only to this machine's names, only small: what another site could send
    # (a text/plain post, a rebound host name) or a flood is refused before any work.
    assert (
        client.post("/api/render", data='{"seed": 1}', content_type="text/plain").status_code == 415
    )
    assert client.post("/api/render", data="not json", content_type="application/json"
                       ).status_code == 400  # fmt: skip
    assert client.post("/api/render", json={"seed": 1}, headers={"Host": "evil.example:8050"}
                       ).status_code == 403  # fmt: skip
    assert client.post("/api/render", json={"seed": 1}, headers={"Host": "[::1]:8050"}
                       ).status_code == 200  # fmt: skip
    huge = client.post("/api/render", json={"off": {"project": [0] * 400_000}})
    assert huge.status_code == 413 and "at most" in huge.get_json()["error"]
    assert client.get("/").status_code == 200 and b"explorer.js" in client.get("/").data
    assert client.get("/static/explorer.js").status_code == 200


def test_concurrent_requests_do_not_see_each_others_edits(explorer):
    from concurrent.futures import ThreadPoolExecutor

    plain, off = {"seed": 4}, {"seed": 4, "off": {"project": list(range(8))}}
    want = {k: explorer.render(r)["image"] for k, r in (("plain", plain), ("off", off))}
    assert want["plain"] != want["off"]
    jobs = [("plain", plain), ("off", off)] * 40
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: (job[0], explorer.render(job[1])["image"]), jobs))
    assert all(image == want[kind] for kind, image in got)


def test_a_conditional_generator_in_the_explorer(cond_run):
    explorer = Explorer(load_generator(cond_run), probe_samples=60, probe_steps=5)
    info = explorer.info()
    assert len(info["classes"]) == 10
    assert not any(d.startswith("class ") for d in info["directions"])  # the class input
    images = {explorer.render({"seed": 1, "class": c})["image"] for c in (0, 5)}
    assert len(images) == 2
    with pytest.raises(GanforgeError, match="out of range"):
        explorer.render({"seed": 1, "class": 10})


def test_a_port_in_use_is_a_one_line_error(tmp_path, uncond_run, cli_many, one_line_error):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GanforgeError, match=f"port {port} on 127.0.0.1 is in use"):
            bind("127.0.0.1", port)
        procs = cli_many(
            {
                "taken": ["explore", uncond_run, "--port", str(port)],
                "no-run": ["explore", tmp_path / "no-run", "--port", "0"],
            }
        )
    one_line_error(procs["taken"], f"port {port}", "in use")
    one_line_error(procs["no-run"], "no-run")
    with pytest.raises(GanforgeError, match="not a port"):
        bind("127.0.0.1", 70000)


def _browser_or_fail():
    """Chromium and Playwright, or a failure that says how to get them: this test must not
    skip quietly. GANFORGE_SKIP_BROWSER=1 skips it, saying so."""
    if os.environ.get("GANFORGE_SKIP_BROWSER") == "1":
        pytest.skip("GANFORGE_SKIP_BROWSER=1: the explorer's browser test was not run")
    chromium = os.environ.get("GANFORGE_CHROMIUM") or shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs playwright: pip install -e '.[dev]'")
    if not chromium:
        pytest.fail("the browser test needs Chromium: apt-get install -y chromium "
                    "(or set GANFORGE_CHROMIUM to a Chromium binary)")  # fmt: skip
    return chromium, sync_playwright


def test_the_explorer_in_a_real_browser(explorer, tmp_path, reach):
    chromium, sync_playwright = _browser_or_fail()
    server = bind("127.0.0.1", 0, make_app(explorer))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def image_after(action) -> np.ndarray:
                """The image once the page has rendered what ``action`` asked for."""
                done = page.evaluate("Number(document.body.dataset.renders || 0)")
                action()
                page.wait_for_function(
                    f"Number(document.body.dataset.renders) > {done} "
                    "&& document.body.dataset.idle === '1'"
                )
                return _pixels(page.get_attribute("#image", "src"))

            first = image_after(lambda: page.goto(url))
            assert first.shape == (8, 8)

            def slide() -> None:
                page.fill("#dir-0", "3")  # fill sends the input event

            walked = image_after(slide)
            assert not np.array_equal(walked, first), "moving a slider left the image as it was"
            assert page.text_content("#dir-0-value") == "3.0"

            before = walked
            for unit in range(8):  # a unit that is silent for this latent changes nothing
                after = image_after(lambda u=unit: page.uncheck(f"#unit-project-{u}"))
                if not np.array_equal(after, before):
                    break
            assert not np.array_equal(after, before), "switching units off changed nothing"

            page.select_option("#brush-layer", "project")
            page.fill("#brush-units", ",".join(str(u) for u in range(8)))
            page.select_option("#brush-mode", "insert")
            page.fill("#brush-size", "0")
            box = page.locator("#brush").bounding_box()
            cell = box["width"] / 8

            def stroke() -> None:  # along the top row, the first three pixels
                page.mouse.move(box["x"] + cell / 2, box["y"] + cell / 2)
                page.mouse.down()
                page.mouse.move(box["x"] + 2.5 * cell, box["y"] + cell / 2, steps=6)
                page.mouse.up()

            painted = image_after(stroke)
            mask = page.evaluate("state.strokes[0].mask")
            bits = torch.tensor([c == "1" for c in mask]).view(8, 8)
            assert bits[0, :3].all() and bits.sum() == 3
            cells = torch.nn.functional.adaptive_max_pool2d(bits.float()[None, None], 4)[0, 0]
            reachable = reach(cells > 0, 1).numpy()
            changed = painted != after
            assert changed.any(), "the paint stroke changed nothing"
            assert not (changed & ~reachable).any(), "the stroke changed pixels it cannot reach"
            shot = tmp_path / "explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("GANFORGE_SCREENSHOTS"):
                shutil.copy(shot, os.environ["GANFORGE_SCREENSHOTS"])
            assert not errors, errors
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

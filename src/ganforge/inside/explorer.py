"""The web explorer: a local page (Flask) to change the seed, walk latent directions, switch
units off, paint with the brush, and watch the image and its layer strip change.

The page and its script are files of this package (no CDN: it works offline). The
browser sends the whole state with each change to ``POST /api/render``::

    {"seed": 3, "class": null, "walk": {"sefa 1": 1.5},
     "off": {"up1": [4, 9]},
     "strokes": [{"layer": "up1", "units": [5, 18], "mode": "insert",
                  "mask": "0010..."}]}          # H*W characters, row by row

and gets back the image and the strip as PNG data URLs with the time taken. Bad requests
get status 400 and ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.data.images import png_bytes, to_uint8
from ganforge.errors import GanforgeError
from ganforge.inside.concepts import digit_concepts
from ganforge.inside.directions import class_directions, sefa_directions, walk
from ganforge.inside.dissect import agreement, unit_thresholds
from ganforge.inside.layers import capture, fit_probes, labelled, strip_of
from ganforge.inside.units import MODES, Edit, check_units, edited, layer_shapes, unit_levels
from ganforge.sampling import LoadedGenerator, check_seed, noise

STATIC = Path(__file__).with_name("static")
BRUSH_UNITS = 4
MAX_STROKES = 200
MAX_REQUEST_BYTES = 2**20  # 200 strokes of a 64x64 mask fit
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def _data_url(picture: np.ndarray, scale: int = 1) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture, scale)).decode()


class Explorer:
    """What the page needs, prepared once: probes for the strip, each layer's unit levels
    for the brush and its default brush units (the best by IoU with the stroke), and the
    latent directions."""

    def __init__(
        self, gen: LoadedGenerator, probe_samples: int = 1000, probe_steps: int = 150
    ) -> None:
        self.gen = gen
        self._lock = threading.Lock()
        self.shapes = layer_shapes(gen)  # empty for the 2014 MLP: no units with a place
        self.probes = fit_probes(gen, probe_samples, probe_steps)
        self.levels = {name: unit_levels(gen, name, 300) for name in self.shapes}
        self.brush_units = self._stroke_units(300)
        self.directions = {**sefa_directions(gen, 5), **class_directions(gen, 1000)}

    def _stroke_units(self, n: int) -> dict[str, list[int]]:
        z = noise(n, self.gen.z_dim, 777)
        features, images = capture(self.gen, z, self.gen.labels(n, None, 777))
        ink = {"stroke": digit_concepts(images)["stroke"]}
        size = (self.gen.spec.image_size,) * 2
        out = {}
        for name in self.shapes:
            h = features[name]
            iou = agreement(h, ink, unit_thresholds(h, size, 0.95))[:, 0]
            out[name] = iou.argsort(descending=True)[:BRUSH_UNITS].tolist()
        return out

    def info(self) -> dict[str, Any]:
        g = self.gen
        return {
            "network": g.network,
            "step": g.step,
            "image_size": g.spec.image_size,
            "classes": g.class_names if g.class_conditional else [],
            "layers": [{"name": n, "units": s[0], "shape": list(s),
                        "brush": self.brush_units[n]} for n, s in self.shapes.items()],
            "directions": list(self.directions),
        }  # fmt: skip

    def edits(self, request: dict[str, Any]) -> list[Edit]:
        off, strokes = request.get("off") or {}, request.get("strokes") or []
        if not isinstance(off, dict):
            raise GanforgeError("'off' maps layer names to lists of units")
        if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
            raise GanforgeError(f"'strokes' is a list of at most {MAX_STROKES} strokes")
        out = [Edit(layer, self._units(layer, units), "remove") for layer, units in off.items()]
        size = self.gen.spec.image_size
        for stroke in strokes:
            if not isinstance(stroke, dict):
                raise GanforgeError("each stroke is an object with layer, units, mode and mask")
            layer, mode, mask = stroke.get("layer"), stroke.get("mode"), stroke.get("mask")
            if mode not in MODES:
                raise GanforgeError(f"a stroke inserts or removes units, not {mode!r}")
            if not isinstance(mask, str) or len(mask) != size * size or set(mask) - {"0", "1"}:
                raise GanforgeError(f"a stroke's mask is {size * size} characters of 0 and 1")
            bits = torch.frombuffer(bytearray(mask, "ascii"), dtype=torch.uint8).eq(ord("1"))
            units = self._units(layer, stroke.get("units"))
            out.append(Edit(layer, units, mode, bits.view(size, size), self.levels[layer]))
        return out

    def _units(self, layer: Any, units: Any) -> list[int]:
        if not isinstance(layer, str) or layer not in self.shapes:
            raise GanforgeError(
                f"there is no feature-map layer {layer!r} (there are: {', '.join(self.shapes)})"
            )
        if not isinstance(units, list) or not all(
            isinstance(u, int) and not isinstance(u, bool) for u in units
        ):
            raise GanforgeError("units are a list of whole numbers")
        return check_units(sorted(set(units)), self.shapes[layer][0], layer)

    def latent(self, request: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        seed = request.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise GanforgeError("the seed is a whole number")
        check_seed(seed, "the seed")
        label = request.get("class")
        if label is not None and (not isinstance(label, int) or isinstance(label, bool)):
            raise GanforgeError("the class is a whole number or null")
        amounts = request.get("walk") or {}
        if not isinstance(amounts, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= 100
            for v in amounts.values()
        ):
            raise GanforgeError("walk amounts are numbers between -100 and 100")
        z = walk(noise(1, self.gen.z_dim, seed), self.directions, amounts)
        return z, self.gen.labels(1, label, seed)

    def render(self, request: dict[str, Any]) -> dict[str, Any]:
        """The image and the layer strip for one state of the page (see the module text)."""
        if not isinstance(request, dict):
            raise GanforgeError("the request is a JSON object")
        start = time.perf_counter()
        z, labels = self.latent(request)
        edits = self.edits(request)
        with self._lock, edited(self.gen, edits):  # hooks are shared by the server's threads
            features, image = capture(self.gen, z, labels)
        strip, names = strip_of(features, image, self.probes, maps=6)
        pixels = to_uint8(image)[0].numpy()
        pixels = np.repeat(pixels, 3, 2) if pixels.shape[2] == 1 else pixels[..., :3]
        return {
            "image": _data_url(pixels),
            "strip": _data_url(labelled(strip, names, scale=2)),
            "ms": round(1000 * (time.perf_counter() - start), 1),
        }


def _hostname(host: str) -> str:
    """The name in a Host header, without the port ("[::1]:8050" -> "[::1]")."""
    return host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]


def make_app(explorer: Explorer, local_only: bool = True):
    """The Flask application serving the page and its API. ``local_only`` answers only
    requests addressed to this machine by name (127.0.0.1, localhost, [::1]), so that a web
    page elsewhere cannot reach it through DNS rebinding."""
    from flask import Flask, jsonify, request, send_from_directory

    app = Flask("ganforge.explorer", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    @app.before_request
    def only_local():
        if local_only and _hostname(request.host) not in LOCAL_NAMES:
            return jsonify({"error": f"this explorer answers {', '.join(LOCAL_NAMES)} only"}), 403
        return None

    @app.errorhandler(413)
    def too_large(_err):
        return jsonify({"error": f"a request is at most {MAX_REQUEST_BYTES:,} bytes"}), 413

    @app.get("/")
    def page():
        return send_from_directory(STATIC, "explorer.html")

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(STATIC, name)

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/api/info")
    def info():
        return jsonify(explorer.info())

    @app.post("/api/render")
    def render():
        # JSON only: a form or text/plain post (what another site can send without asking)
        # is refused.
        if not request.is_json:
            return jsonify({"error": "send the state as application/json"}), 415
        try:
            return jsonify(explorer.render(request.get_json(silent=True)))
        except GanforgeError as err:
            return jsonify({"error": str(err)}), 400

    return app


def _not_ready(environ, start_response):  # replaced before serving starts
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"the explorer is not ready"]


def bind(host: str = "127.0.0.1", port: int = 8050, app=None):
    """A threaded server bound to ``host:port`` (port 0 picks a free one), serving ``app``
    (set ``server.app`` later to bind first); call ``serve_forever()``. A port in use is a
    one-line error."""
    from werkzeug.serving import make_server

    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise GanforgeError(f"port {port} is not a port number (0..65535)")
    try:  # werkzeug prints its own message and exits on a bind error: try the port first
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        return make_server(host, port, app or _not_ready, threaded=True)
    except (OSError, SystemExit) as err:
        if "in use" in str(err).lower():
            raise GanforgeError(f"port {port} on {host} is in use; choose another --port") from None
        raise GanforgeError(f"cannot listen on {host} port {port} ({err})") from None


def serve(
    source: str | Path, host: str = "127.0.0.1", port: int = 8050, device: str = "cpu",
    ready=print,
) -> None:  # fmt: skip
    """Load the generator of ``source``, bind (a taken port fails before the slow work),
    prepare the explorer, then serve until interrupted."""
    import logging

    from ganforge.sampling import load_generator

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    gen = load_generator(source, device)
    server = bind(host, port)
    try:
        ready("preparing the explorer (layer probes, unit levels, directions) ...")
        explorer = Explorer(gen)
        server.app = make_app(explorer, local_only=host in LOCAL_NAMES)
        ready(f"explorer at http://{host}:{server.server_port}/  (Ctrl+C stops it)")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

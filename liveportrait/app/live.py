"""The Live tab: the browser's camera drives a portrait, streamed both ways over WebRTC.

Start (a Gradio event) finds the photo's face and registers a session with the engine ``liveportrait live``
runs (:mod:`liveportrait.live`); the page's script then opens the camera and a peer connection (no ICE server:
host candidates only) and posts its offer to ``/liveportrait/live/offer``, on the app's own server. Stop, a
closed tab (``/liveportrait/live/stop`` by beacon, or the connection failing) end the session. The page
shows the server's fps and latency twice a second (data channel) and any problem in one line.
"""

from __future__ import annotations

import json

from ..errors import InputError
from ..uploads import check_upload, load_photo

OFFER_PATH = "/liveportrait/live/offer"
STOP_PATH = "/liveportrait/live/stop"
STREAM_MAX_DIM = 720  # the streamed picture's longer side: a larger photo is shown smaller (encoding costs)

LIVE_PANEL = """
<div id="live-panel">
  <video id="live-video" autoplay playsinline muted style="max-width:100%;max-height:540px;background:#111"></video>
  <div id="live-stats" style="font-family:monospace;font-size:0.9em">not streaming</div>
  <div id="live-message" style="font-weight:bold"></div>
</div>
"""

# the page's side: camera, peer connection, statistics; window.lpLive is driven by the tab's buttons
LIVE_SCRIPT = """
<script>
(() => {
  const lp = window.lpLive = {pc: null, channel: null, stream: null, token: null, frames: 0, stats: null,
                              iceServers: %(ice)s};
  const el = (id) => document.getElementById(id);
  const say = (text) => { const m = el("live-message"); if (m) m.textContent = text || ""; };
  const url = (path) => new URL(path.replace(/^\\//, ""), document.baseURI).toString();
  lp.say = say;
  function show(s) {
    lp.stats = s;
    const box = el("live-stats");
    if (!box) return;
    const latency = s.latency_ms == null ? "-" : Math.round(s.latency_ms) + " ms";
    box.textContent = `${s.fps.toFixed(1)} fps, latency ${latency} (camera frame in to portrait out), ` +
      `${s.rendered} frames shown, ${s.dropped} dropped` + (s.stages ? ` | ${s.stages}` : "");
  }
  function countFrames(video) {
    if (!video.requestVideoFrameCallback) return;
    const tick = () => { lp.frames += 1; if (lp.pc) video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  }
  function iceGathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((done) => {
      const check = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", check);
        done();
      };
      pc.addEventListener("icegatheringstatechange", check);
      setTimeout(done, 3000);
    });
  }
  function tellServer(token) {
    if (!token) return;
    const body = JSON.stringify({token});
    const json = {type: "application/json"};
    if (navigator.sendBeacon && navigator.sendBeacon(url("%(stop)s"), new Blob([body], json))) return;
    fetch(url("%(stop)s"), {method: "POST", body, headers: {"Content-Type": "application/json"}, keepalive: true})
      .catch(() => {});
  }
  lp.stop = async (why) => {
    const token = lp.token;
    lp.token = null;
    if (lp.channel) { try { lp.channel.close(); } catch (e) {} }
    if (lp.pc) { try { lp.pc.close(); } catch (e) {} }
    if (lp.stream) lp.stream.getTracks().forEach((t) => t.stop());
    lp.pc = lp.channel = lp.stream = null;
    tellServer(token);
    const video = el("live-video");
    if (video) video.srcObject = null;
    const box = el("live-stats");
    if (box) box.textContent = "not streaming";
    if (why !== undefined) say(why);
  };
  lp.neutral = () => {
    if (!lp.channel || lp.channel.readyState !== "open") return;
    lp.channel.send("neutral");
    say("Neutral face taken from the next camera frame.");
  };
  lp.start = async (token) => {
    if (!token) return;
    await lp.stop();
    lp.token = token;
    lp.frames = 0;
    say("Opening the camera...");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
    } catch (e) {
      const why = e.name === "NotAllowedError"
        ? "No camera permission: allow the camera for this page (the icon in the address bar), then Start again."
        : e.name === "NotFoundError" ? "No camera found: plug one in, then press Start again."
        : e.name === "NotReadableError" ? "The camera is in use by another program: close it, then press Start again."
        : !navigator.mediaDevices ? "This page cannot use a camera: open it as http://127.0.0.1 or over https."
        : `The camera could not be opened (${e.name}).`;
      await lp.stop(why);
      return;
    }
    if (lp.token !== token) { stream.getTracks().forEach((t) => t.stop()); return; }
    lp.stream = stream;
    const pc = lp.pc = new RTCPeerConnection({iceServers: lp.iceServers});
    const channel = lp.channel = pc.createDataChannel("live");
    channel.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.stats) show(m.stats);
      if ("message" in m) say(m.message);
      if (m.ended) lp.stop(m.message);
    };
    stream.getTracks().forEach((t) => pc.addTrack(t, stream));
    pc.ontrack = (event) => {
      const video = el("live-video");
      video.srcObject = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      countFrames(video);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== lp.pc) return;
      if (pc.connectionState === "failed") {
        lp.stop("The connection to the server failed (another network? the README says how to add STUN/TURN).");
      }
      if (pc.connectionState === "connected") say("");
    };
    say("Connecting...");
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc);
      const response = await fetch(url("%(offer)s"), {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({token, sdp: pc.localDescription.sdp, type: pc.localDescription.type})});
      const answer = await response.json();
      if (!response.ok) { await lp.stop(answer.error || "The server refused the stream."); return; }
      if (pc !== lp.pc) return;
      await pc.setRemoteDescription(answer);
    } catch (e) {
      await lp.stop(`The stream could not start: ${e.message || e}`);
    }
  };
  lp.capture = () => {
    const video = el("live-video");
    if (!video || !video.videoWidth) return null;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return canvas.toDataURL("image/png");
  };
  window.addEventListener("pagehide", () => tellServer(lp.token));
})();
</script>
"""


def live_script(ice: list[dict]) -> str:
    """The page's script, with the STUN/TURN servers of ``$LIVEPORTRAIT_ICE_SERVERS`` (none by default)."""
    return LIVE_SCRIPT % {"offer": OFFER_PATH, "stop": STOP_PATH, "ice": json.dumps(ice).replace("<", "\\u003c")}


class LiveTab:
    """The Live tab's server side: sessions of the app's pipeline on one hub (see :mod:`liveportrait.live`)."""

    def __init__(self, backend, hub=None):
        from ..live.webrtc import ice_servers

        self.backend = backend
        self._hub = hub
        self.ice = ice_servers()  # a malformed $LIVEPORTRAIT_ICE_SERVERS: one line before the app starts
        self.script = live_script(self.ice)

    @property
    def hub(self):
        if self._hub is None:
            from ..live.webrtc import LiveHub

            self._hub = LiveHub(ice=self.ice)
        return self._hub

    def start(self, photo, relative: bool = True, paste_back: bool = True, smoothing: float = 0.0,
              virtual_camera: bool = False) -> str:
        """Find the photo's face and register a session (its token goes to the page's script)."""
        from ..errors import require_extra
        from ..live.session import live_config, make_engine, prepare_portrait
        from ..provenance import Stamp

        require_extra("live", ("aiortc", "av"), "the Live tab")
        if not photo:
            raise InputError("choose a portrait photo (or an example) first")
        b = self.backend
        path, _ = check_upload(photo, ("image",), "a portrait photo", b.limits)
        smoothing = float(smoothing or 0.0)
        if not 0 <= smoothing < 1:
            raise InputError("smoothing must be at least 0 and below 1")
        config = live_config(paste_back=bool(paste_back), relative=bool(relative)).but(source_max_dim=STREAM_MAX_DIM)
        portrait = prepare_portrait(b.pipe, load_photo(path, limits=b.limits), config)  # no face: a message
        camera = None
        if virtual_camera:
            from ..live.virtualcam import VirtualCamera

            camera = VirtualCamera(*portrait.output_size, fps=25)
        stamp = Stamp(b.stamp.run_id, watermark=b.watermark)  # the app's run; a marker of the session's own
        engine = make_engine(portrait, "auto", 25.0, smoothing=1.0 - smoothing,
                             mark=stamp.mark if b.watermark else None)
        try:
            return self.hub.register(engine, camera=camera)
        except BaseException:
            if camera is not None:
                camera.close()
            raise

    def add_routes(self, app) -> None:
        """The signalling endpoints on the app's FastAPI server (posted by the page's script)."""
        from fastapi import Request
        from fastapi.responses import JSONResponse

        from ..errors import LivePortraitError

        async def body_of(request: Request) -> dict:
            try:
                data = json.loads(await request.body() or b"{}")
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise InputError("the request is not a JSON object")
            return data

        async def offer(request: Request):
            import asyncio

            try:
                data = await body_of(request)
                answer = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                    self.hub.answer_async(data.get("token"), data.get("sdp"), data.get("type", "offer")),
                    self.hub._start_loop()))
                return JSONResponse(answer)
            except LivePortraitError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        async def stop(request: Request):
            import asyncio

            try:
                data = await body_of(request)
            except LivePortraitError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            token = data.get("token")
            stopped = isinstance(token, str) and await asyncio.to_thread(self.hub.stop, token)
            return JSONResponse({"stopped": bool(stopped)})

        for handler in (offer, stop):  # this module's annotations are strings: FastAPI is given the class
            handler.__annotations__ = {"request": Request}
        app.add_api_route(OFFER_PATH, offer, methods=["POST"], include_in_schema=False)
        app.add_api_route(STOP_PATH, stop, methods=["POST"], include_in_schema=False)

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()


def build_live_tab(gr, live: LiveTab, board, user_errors, example_gallery, pick, examples, compute: str) -> None:
    """The tab's components and events, inside ``build_app``'s ``gr.Tabs`` (gradio passed in: this module
    imports none of it, so that its server side is testable alone)."""
    with gr.Tab("Live", id="live"):
        gr.Markdown("Your camera drives the portrait, live. The first camera picture is the neutral face "
                    "(**Neutral face now** takes it again). Pictures only (a camera carries no sound); "
                    "everything stays on this computer.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                photo = gr.Image(label="Portrait photo", type="filepath", sources=["upload"], height=260,
                                 elem_id="live-photo")
                gallery = example_gallery(examples, "live-examples", "Example (painted by the app): pick it",
                                          columns=2, height=200)
                with gr.Row():
                    relative = gr.Checkbox(True, label="relative motion", elem_id="live-relative")
                    paste = gr.Checkbox(True, label="paste back into the photo", elem_id="live-paste")
                smoothing = gr.Slider(0, 0.9, value=0.0, step=0.05, label="motion smoothing (0: off)",
                                      elem_id="live-smoothing")
                camera = gr.Checkbox(False, label="also send to a virtual camera (for video calls; needs OBS "
                                                  "Virtual Camera or v4l2loopback)", elem_id="live-virtual-camera")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="live-start")
                    stop = gr.Button("Stop", elem_id="live-stop")
                    neutral = gr.Button("Neutral face now", elem_id="live-neutral")
                error = gr.Markdown(elem_id="live-error")
                token = gr.Textbox("", visible=False, elem_id="live-token")
            with gr.Column(scale=2):
                gr.HTML(LIVE_PANEL, elem_id="live-panel-box")

        def start_live(photo, relative, paste, smoothing, camera):
            return live.start(photo, relative, paste, smoothing, camera)

        event = start.click(user_errors(start_live, board), [photo, relative, paste, smoothing, camera], [token],
                            api_visibility="private", concurrency_id=compute, concurrency_limit=1)
        event.failure(board.show, None, [error], queue=False, api_visibility="private")
        event.success(lambda: "", None, [error], queue=False, api_visibility="private")
        event.success(None, [token], None, js="(token) => { window.lpLive.start(token); }",
                      api_visibility="private")
        stop.click(None, None, None, js="() => { window.lpLive.stop('Stopped.'); }", api_visibility="private")
        neutral.click(None, None, None, js="() => { window.lpLive.neutral(); }", api_visibility="private")
        gallery.select(pick(examples), None, [photo], queue=False, api_visibility="private")

"use strict";
// The status page's live picture: by WebRTC (WHEP at stream/whep) when the
// daemon offers it, else (or when that fails) fragmented MP4 from
// stream.ws into Media Source Extensions (ManagedMediaSource on
// Safari/iOS) kept close to live; and the page's figures refreshed by
// fetching the page again.
(() => {
  const video = document.getElementById("live");
  const note = document.getElementById("live-note");
  const Source = window.ManagedMediaSource || window.MediaSource;
  let token = video.dataset.token;
  let retryMs = 500;
  let lastData = 0;
  let current = null;

  const say = (text) => { note.textContent = text; };

  const withToken = (path) => {
    const url = new URL(path, location.href);
    if (token) url.searchParams.set("token", token);
    return url;
  };

  const socketUrl = () => {
    const url = withToken("stream.ws");
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return url;
  };

  // WebRTC: resolves once the picture plays, rejects when it cannot (no
  // WebRTC, a refused offer, no connection within 5 s).
  const webrtc = async () => {
    const pc = new RTCPeerConnection();
    try {
      pc.addTransceiver("video", { direction: "recvonly" });
      const playing = new Promise((resolve, reject) => {
        pc.ontrack = (event) => {
          video.srcObject = event.streams[0] || new MediaStream([event.track]);
          video.play().catch(() => {});
        };
        video.addEventListener("playing", resolve, { once: true });
        setTimeout(() => reject(new Error("no picture by WebRTC within 5 s")), 5000);
      });
      // The whole offer at once (no trickle). Without a STUN server every
      // candidate is a host one, and they come together: a moment after
      // the first, the offer is complete; none at all means no address.
      const gathered = new Promise((resolve) => {
        let settle = setTimeout(resolve, 300);
        pc.onicecandidate = (event) => {
          clearTimeout(settle);
          settle = setTimeout(resolve, event.candidate ? 50 : 0);
        };
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered;
      if (!pc.localDescription.sdp.includes("a=candidate")) {
        throw new Error("no network address for WebRTC");
      }
      const response = await fetch(withToken("stream/whep"), {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
      if (response.status !== 201) throw new Error(`WHEP: ${response.status}`);
      const session = response.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      await playing;
      pc.onconnectionstatechange = () => {
        if (["failed", "closed", "disconnected"].includes(pc.connectionState)) {
          pc.close();
          say("the WebRTC connection was lost; reconnecting…");
          setTimeout(start, retryMs);
        }
      };
      addEventListener("pagehide", () => {
        if (session) fetch(withToken(session), { method: "DELETE", keepalive: true });
      });
      window.streamcamTransport = "webrtc";
    } catch (e) {
      pc.close();
      throw e;
    }
  };

  // One attempt: a MediaSource, a socket, a queue of segments between them.
  const connect = () => {
    const source = new Source();
    const queue = [];
    let buffer = null;
    let socket = null;
    let ended = false;
    const retry = (why) => {
      if (ended) return;
      ended = true;
      if (socket) socket.close();
      say(`${why}; reconnecting…`);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
    const pump = () => {
      if (!buffer || buffer.updating || queue.length === 0 || ended) return;
      try {
        buffer.appendBuffer(queue.shift());
      } catch (e) {
        retry(`the browser refused the picture (${e.name})`);
      }
    };
    current = { retry, trim: () => trim(buffer) };
    video.disableRemotePlayback = true; // ManagedMediaSource wants this
    video.src = URL.createObjectURL(source);
    source.addEventListener("sourceopen", () => {
      socket = new WebSocket(socketUrl());
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        lastData = performance.now();
        if (typeof event.data === "string") {
          const hello = JSON.parse(event.data);
          if (!Source.isTypeSupported(hello.type)) {
            ended = true;
            socket.close();
            say(`This browser cannot play ${hello.type}: use the RTSP address below.`);
            return;
          }
          buffer = source.addSourceBuffer(hello.type);
          buffer.mode = "segments";
          buffer.addEventListener("updateend", pump);
          return;
        }
        queue.push(event.data);
        pump();
      };
      socket.onopen = () => say("");
      socket.onclose = (event) => retry(event.reason || "the connection was lost");
    }, { once: true });
  };

  // Stays near the newest picture: jumps when far behind, plays a little
  // faster when slightly behind, and drops what has been shown.
  const trim = (buffer) => {
    const ranges = video.buffered;
    if (ranges.length === 0) return;
    const end = ranges.end(ranges.length - 1);
    const behind = end - video.currentTime;
    if (behind > 1.5 || video.currentTime < ranges.start(0)) {
      video.currentTime = Math.max(ranges.start(ranges.length - 1), end - 0.1);
    }
    video.playbackRate = behind > 0.3 ? 1.1 : 1.0;
    if (video.paused) video.play().catch(() => {});
    if (buffer && !buffer.updating && video.currentTime - ranges.start(0) > 20) {
      buffer.remove(0, video.currentTime - 10);
    }
  };

  const watch = () => {
    if (!current) return;
    if (lastData && performance.now() - lastData > 5000) {
      lastData = 0;
      current.retry("no picture for 5 s");
      return;
    }
    if (lastData) retryMs = 500;
    current.trim();
  };

  // The figures (and a fresh token for reconnecting) from the page itself.
  const refresh = async () => {
    try {
      const response = await fetch(location.href, { cache: "no-store" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["state", "now"]) {
        const fresh = page.getElementById(id);
        if (fresh) document.getElementById(id).replaceWith(fresh);
      }
      token = page.getElementById("live").dataset.token;
    } catch (e) {
      // The daemon is restarting or the network is down: try again later.
    }
  };

  const mse = () => {
    if (!Source) {
      say("This browser cannot play the live picture here: use the RTSP address below.");
      return;
    }
    window.streamcamTransport = "mse";
    video.srcObject = null;
    connect();
    setInterval(watch, 250);
  };

  // `?live=mse` on the page's address keeps to the WebSocket.
  const wantsMse = new URLSearchParams(location.search).get("live") === "mse";

  const start = () => {
    if (video.dataset.webrtc === "true" && window.RTCPeerConnection && !wantsMse) {
      webrtc().catch((e) => {
        console.warn(`streamcam: WebRTC: ${e.message}`);
        say(`${e.message}: playing over the WebSocket instead`);
        mse();
      });
    } else {
      mse();
    }
  };
  start();
  setInterval(refresh, 5000);
})();

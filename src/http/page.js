"use strict";
// The status page's live picture (fragmented MP4 from stream.ws into Media
// Source Extensions, ManagedMediaSource on Safari/iOS) kept close to live,
// and the page's figures refreshed by fetching the page again.
(() => {
  const video = document.getElementById("live");
  const note = document.getElementById("live-note");
  const Source = window.ManagedMediaSource || window.MediaSource;
  let token = video.dataset.token;
  let retryMs = 500;
  let lastData = 0;
  let current = null;

  const say = (text) => { note.textContent = text; };

  const socketUrl = () => {
    const url = new URL("stream.ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (token) url.searchParams.set("token", token);
    return url;
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

  if (Source) {
    connect();
    setInterval(watch, 250);
  } else {
    say("This browser cannot play the live picture here: use the RTSP address below.");
  }
  setInterval(refresh, 5000);
})();

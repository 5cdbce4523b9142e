// Opens VIEWERS pages of a streamcam status page in one headless Chromium
// and, after a warm-up, reads the test pattern's timecode (the bottom row
// of squares: Unix milliseconds at capture) from every frame the pages
// present, against the wall clock: capture-to-screen latency. Prints one
// JSON line: the transport the pages used, frames seen, latency p50/p95.
//
//   node bench/browser.mjs URL VIEWERS SECONDS
//
// BROWSER_TOOLS names the node_modules holding puppeteer-core (ci/browser
// installs it); CHROMIUM the browser.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const puppeteer = createRequire(join(process.env.BROWSER_TOOLS, "/"))("puppeteer-core");
const [url, viewers = "1", seconds = "20"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "streamcam-bench-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  userDataDir: profile,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"],
});

// In the page: on every presented frame, the timecode's age in ms.
const measure = () => {
  const video = document.getElementById("live");
  const canvas = document.createElement("canvas");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  window.latencies = [];
  const onFrame = (now, meta) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      const cell = Math.floor(w / 48) & ~1;
      canvas.width = w; canvas.height = cell;
      g.drawImage(video, 0, h - cell, w, cell, 0, 0, w, cell);
      const row = g.getImageData(0, Math.floor(cell / 2), w, 1).data;
      let ms = 0;
      for (let bit = 0; bit < 48; bit++) {
        const x = bit * cell + Math.floor(cell / 2);
        ms = ms * 2 + (row[4 * x + 1] > 128 ? 1 : 0);
      }
      const shown = performance.timeOrigin + (meta.expectedDisplayTime || now);
      const age = shown - ms;
      if (age > -100 && age < 60000) window.latencies.push(age);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
};

const pages = [];
for (let i = 0; i < Number(viewers); i++) {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: "domcontentloaded" });
  pages.push(page);
}
await new Promise((r) => setTimeout(r, 4000)); // warm-up: connect, settle
for (const page of pages) await page.evaluate(measure);
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const all = [];
let transport = null;
for (const page of pages) {
  all.push(...(await page.evaluate(() => window.latencies)));
  transport ??= await page.evaluate(() => window.streamcamTransport ?? null);
}
await browser.close();
rmSync(profile, { recursive: true, force: true });
all.sort((a, b) => a - b);
const pick = (q) => (all.length ? Math.round(all[Math.min(all.length - 1, Math.floor(q * all.length))]) : null);
console.log(JSON.stringify({ transport, viewers: Number(viewers), frames: all.length, p50: pick(0.5), p95: pick(0.95) }));

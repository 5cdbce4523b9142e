// Opens a streamcam status page in headless Chromium and reports, as one
// JSON line, what its live picture did:
//   node watch.mjs <page url> <screenshot.png> [seconds]
// The caller (tests/loopback/browser.rs) asserts on it. BROWSER_TOOLS
// names the node_modules directory holding puppeteer-core; CHROMIUM the
// browser; WATCH_USER and WATCH_PASSWORD, if set, are given when the page
// asks for a password; WATCH_BLOCK, if set, makes every request whose URL
// contains it fail (as a proxy that refuses it would).
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const puppeteer = createRequire(join(process.env.BROWSER_TOOLS, "/"))("puppeteer-core");

const [url, screenshot, seconds = "4"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "streamcam-chromium-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  userDataDir: profile,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    // The daemon's own self-signed certificate, for the HTTPS tests.
    "--ignore-certificate-errors",
  ],
});
const result = { console: [] };
try {
  const page = await browser.newPage();
  if (process.env.WATCH_USER) {
    await page.authenticate({ username: process.env.WATCH_USER, password: process.env.WATCH_PASSWORD });
  }
  page.on("console", (m) => result.console.push(m.text()));
  page.on("pageerror", (e) => result.console.push(`page error: ${e.message}`));
  const block = process.env.WATCH_BLOCK;
  if (block) {
    await page.setRequestInterception(true);
    page.on("request", (r) => (r.url().includes(block) ? r.abort("blockedbyclient") : r.continue()));
  }
  // The first frame's time from the start of the page's navigation.
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("playing", () => {
      window.__firstFrameMs ??= performance.now();
    }, true);
  });
  const response = await page.goto(url, { waitUntil: "domcontentloaded" });
  result.status = response.status();
  await page.waitForFunction(() => window.__firstFrameMs !== undefined, { timeout: 10000 })
    .catch(() => {});
  const grab = () => page.evaluate(() => {
    const v = document.getElementById("live");
    const c = document.createElement("canvas");
    c.width = 320; c.height = 180;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, c.width, c.height);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let hash = 0;
    for (let i = 0; i < px.length; i += 4) hash = (hash * 31 + px[i] + px[i + 1] + px[i + 2]) >>> 0;
    return { width: v.videoWidth, height: v.videoHeight, time: v.currentTime, hash,
             buffered: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : -1 };
  });
  const first = await grab();
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  const last = await grab();
  result.firstFrameMs = await page.evaluate(() => window.__firstFrameMs ?? null);
  result.first = first;
  result.last = last;
  result.note = await page.evaluate(() => document.getElementById("live-note").textContent);
  result.transport = await page.evaluate(() => window.streamcamTransport ?? null);
  await page.screenshot({ path: screenshot });
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));

// The dashboard page under load (bench_dashboard.py): opens URL in Debian's headless Chromium, prints "OPEN" once
// the page is live, then for SECONDS measures how fast the page answers a script call (every 250 ms) and the
// longest main-thread task, and prints "RESULT {json}".
import { createRequire } from "node:module";

const require = createRequire(process.env.TICKLAKE_NODE_MODULES + "/");
const { chromium } = require("playwright-core");
const [url, seconds] = process.argv.slice(2);
const say = (line) => process.stderr.write(line + "\n");

const browser = await chromium.launch({
  executablePath: process.env.TICKLAKE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.addInitScript(() => {
    window.__longest = 0;
    window.__updates = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
    }).observe({ type: "longtask", buffered: true });
    new MutationObserver(() => { window.__updates += 1; })
      .observe(document, { subtree: true, attributes: true, attributeFilter: ["data-records"] });
  });
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status").dataset.state === "live", null, { timeout: 30000 });
  say("OPEN");
  const latencies = [];
  const end = Date.now() + Number(seconds) * 1000;
  while (Date.now() < end) {
    const t0 = performance.now();
    await page.evaluate(() => document.body.dataset.records);
    latencies.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 250));
  }
  latencies.sort((a, b) => a - b);
  const q = (f) => latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))];
  Object.assign(result, {
    samples: latencies.length, p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1],
    longestTask: await page.evaluate(() => window.__longest),
    updates: await page.evaluate(() => window.__updates),
    records: Number(await page.evaluate(() => document.body.dataset.records)),
  });
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
say("RESULT " + JSON.stringify(result));

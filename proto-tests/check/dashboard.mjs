// The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; no downloaded browser).
// Usage: node dashboard.mjs URL SCREENSHOT EXPECTED_SYMBOLS NEW_SYMBOL HOSTILE_SYMBOL
// Talks to the Rust test through stderr: "LOADED ..." once the page shows the sample's symbols and the lake (the
// test then sends new records), "RESULT {json}" at the end. Every wait is on the page's DOM (an event), bounded
// only so that a broken page fails instead of hanging.
import { createRequire } from "node:module";
import { statSync } from "node:fs";

const require = createRequire(process.env.TICKLAKE_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [url, screenshot, expected, newSymbol, hostile] = process.argv.slice(2);
const expectedSymbols = expected.split(",");
const say = (line) => process.stderr.write(line + "\n");

const browser = await chromium.launch({
  executablePath: process.env.TICKLAKE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = { dialogs: [], consoleErrors: [], pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("dialog", async (d) => { result.dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => result.pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(m.text()); });
  const response = await page.goto(url);
  result.status = response.status();
  result.csp = response.headers()["content-security-policy"] || "";
  // The sample's symbols, from the recent past the page is sent on open.
  await page.waitForFunction(
    (want) => want.every((s) => document.querySelector(`.card[data-symbol="${CSS.escape(s)}"]`)),
    expectedSymbols, { timeout: 60000 });
  await page.waitForFunction(() => document.body.dataset.checkpoints !== undefined, null, { timeout: 60000 });
  result.symbolsAtLoad = await page.$$eval(".card", (cards) => cards.map((c) => c.dataset.symbol));
  result.checkpointsAtLoad = Number(await page.evaluate(() => document.body.dataset.checkpoints));
  say("LOADED " + JSON.stringify({ symbols: result.symbolsAtLoad.length, checkpoints: result.checkpointsAtLoad }));

  // Records sent after the page loaded: the new symbol's card appears, the hostile one too (as text).
  await page.waitForFunction(
    (s) => document.querySelector(`.card[data-symbol="${CSS.escape(s)}"]`), newSymbol, { timeout: 60000 });
  await page.waitForFunction(
    (s) => Array.from(document.querySelectorAll(".card .name")).some((n) => n.textContent === s), hostile,
    { timeout: 60000 });
  await page.waitForFunction(() => Number(document.body.dataset.malformed) >= 2, null, { timeout: 60000 });
  result.newSymbolText = await page.$eval(`.card[data-symbol="${newSymbol}"] .name`, (n) => n.textContent);
  // The chart kind follows the records: a close makes a line, a tick's price one-minute candles.
  await page.waitForFunction(() => document.querySelector('.card[data-symbol="ZZTICK"] svg rect'), null, { timeout: 60000 });
  result.chartKinds = await page.evaluate(() => Object.fromEntries(["ZZNEW", "ZZTICK"].map((s) => {
    const svg = document.querySelector(`.card[data-symbol="${s}"] svg`);
    return [s, svg.querySelector("polyline") ? "line" : svg.querySelector("rect") ? "candles" : "none"];
  })));
  result.imgElements = await page.evaluate(() => document.querySelectorAll("img").length);
  result.pwned = await page.evaluate(() => window.__pwned === true);
  result.malformed = Number(await page.evaluate(() => document.body.dataset.malformed));
  result.longestCell = await page.evaluate(() =>
    Math.max(...Array.from(document.querySelectorAll("td.record")).map((td) => td.textContent.length)));
  result.cellWithLongString = await page.evaluate(() =>
    Array.from(document.querySelectorAll("td.record")).some((td) => td.textContent.includes("AAAAAAAAAA")));

  // The lake panel: the checkpoints move once the sink commits what was sent.
  await page.waitForFunction((before) => Number(document.body.dataset.checkpoints) > before,
    result.checkpointsAtLoad, { timeout: 90000 });
  result.checkpointsAfter = Number(await page.evaluate(() => document.body.dataset.checkpoints));

  // The sink's /metrics (--metrics), shown with its records counter.
  await page.waitForFunction(() => Array.from(document.querySelectorAll("#metrics tr"))
    .some((tr) => tr.cells[0] && tr.cells[0].textContent === "ticklake_sink_records_total" && Number(tr.cells[1].textContent) >= 4000),
  null, { timeout: 60000 });
  result.sinkRecordsShown = await page.evaluate(() => Number(Array.from(document.querySelectorAll("#metrics tr"))
    .find((tr) => tr.cells[0].textContent === "ticklake_sink_records_total").cells[1].textContent));

  // The symbol filter shows only what matches.
  await page.fill("#filter", newSymbol.toLowerCase());
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 1, null, { timeout: 10000 });
  result.filtered = await page.$$eval(".card", (cards) => cards.map((c) => c.dataset.symbol));
  await page.fill("#filter", "");
  await page.waitForFunction((n) => document.querySelectorAll(".card").length >= n, expectedSymbols.length,
    { timeout: 10000 });

  await page.screenshot({ path: screenshot, fullPage: true });
  result.screenshotBytes = statSync(screenshot).size;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
say("RESULT " + JSON.stringify(result));

// The browser page of examples/web in Debian's chromium (headless, driven by
// puppeteer-core), run by tests/test_compile.cpp: node page_check.mjs FOLDER CONFIG_JSON,
// where FOLDER holds the page and a compiled model.mjs + model.wasm, and the config is
// {prompt, text}. Serves FOLDER on
// 127.0.0.1, loads the page, types PROMPT, presses Generate and waits for the story;
// exits 0 when the page shows TEXT (the prompt and the greedy golden continuation) and
// its memory use, else prints what it saw and exits 1. Bounded: 120 s in all.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import puppeteer from "puppeteer-core";

const folder = process.argv[2];
const { prompt, text: expected } = JSON.parse(process.argv[3]);
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  const file = path.join(folder, path.normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)));
  const name = file.endsWith(path.sep) ? path.join(file, "index.html") : file;
  if (!name.startsWith(path.resolve(folder)) || !fs.existsSync(name) || !fs.statSync(name).isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": types[path.extname(name)] || "application/octet-stream" });
  fs.createReadStream(name).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

const deadline = setTimeout(() => {
  console.log("FAIL: the page took more than 120 s");
  process.exit(1);
}, 120000);
const browser = await puppeteer.launch({
  executablePath: process.env.BITNETC_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let status = 1;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`page error: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("ready") ||
                                   document.getElementById("status").textContent.startsWith("error"),
                             { timeout: 60000 });
  const loaded = await page.$eval("#status", (e) => e.textContent);
  if (!loaded.startsWith("ready")) throw new Error(`the model did not load: ${loaded}\n${logs.join("\n")}`);
  await page.$eval("#prompt", (e) => { e.value = ""; });
  await page.type("#prompt", prompt);
  await page.click("#generate");
  await page.waitForFunction(() => ["done", "stopped"].includes(document.getElementById("status").textContent) ||
                                   document.getElementById("status").textContent.startsWith("error"),
                             { timeout: 60000 });
  const [state, text, memory] = await Promise.all(
      ["#status", "#output", "#memory"].map((id) => page.$eval(id, (e) => e.textContent)));
  if (state !== "done") throw new Error(`the page says ${state}\n${logs.join("\n")}`);
  if (text !== expected) throw new Error(`the page shows ${JSON.stringify(text)}, not ${JSON.stringify(expected)}`);
  if (!/^\d+\.\d MB$/.test(memory)) throw new Error(`the page shows no memory use: ${JSON.stringify(memory)}`);
  console.log(`the page wrote the golden story (memory ${memory})`);
  status = 0;
} catch (e) {
  console.log(`FAIL: ${e.message}`);
} finally {
  await browser.close();
  server.close();
  clearTimeout(deadline);
}
process.exit(status);

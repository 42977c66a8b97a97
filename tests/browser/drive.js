// Drives Debian's Chromium for tests/integration/test_browser.py: one JSON command per line
// on stdin, one JSON answer per line on stdout. Usage:
//   node drive.js [--chromium PATH] [--trust-spki BASE64_SHA256]... [--disable-http2 1]
// Commands: open {url}, wait_text {selector, text, exact, timeout}, fill {selector, value},
// click {selector}, text {selector}, quit. A failed command answers ok:false with the page's
// text and its console, so a failing test shows what the page saw.
"use strict";

const readline = require("readline");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const opts = { executablePath: "/usr/bin/chromium", spki: [], http2: true };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === "--chromium") opts.executablePath = argv[i + 1];
    else if (argv[i] === "--trust-spki") opts.spki.push(argv[i + 1]);
    else if (argv[i] === "--disable-http2") opts.http2 = false;
    else throw new Error("unknown argument " + argv[i]);
  }
  return opts;
}

// This machine's network is closed: the background-networking flags keep Chromium from
// trying (and failing) to reach Google's hosts at every start.
function launchArgs({ spki, http2 }) {
  const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];
  // Trusts only the test's own server key, rather than ignoring every certificate error.
  if (spki.length) args.push("--ignore-certificate-errors-spki-list=" + spki.join(","));
  if (!http2) args.push("--disable-http2");
  return args;
}

class Session {
  constructor(browser) {
    this.browser = browser;
    this.context = null;
    this.page = null;
    this.console = [];
  }

  async open({ url }) {
    if (this.context) await this.context.close();
    this.console = [];
    this.context = await this.browser.newContext();
    this.page = await this.context.newPage();
    this.page.on("console", (m) => this.console.push(m.type() + ": " + m.text()));
    this.page.on("pageerror", (e) => this.console.push("pageerror: " + e.message));
    const res = await this.page.goto(url, { waitUntil: "load", timeout: 10000 });
    return { status: res ? res.status() : null };
  }

  async wait_text({ selector, text, exact = false, timeout = 10000 }) {
    await this.page.waitForFunction(([sel, want, whole]) => {
      const el = document.querySelector(sel);
      if (!el) return false;
      return whole ? el.textContent === want : el.textContent.includes(want);
    }, [selector, text, exact], { timeout });
    return { text: await this.page.textContent(selector) };
  }

  async fill({ selector, value }) {
    await this.page.fill(selector, value, { timeout: 5000 });
    return {};
  }

  async click({ selector }) {
    await this.page.click(selector, { timeout: 5000 });
    return {};
  }

  async text({ selector }) {
    return { text: await this.page.textContent(selector, { timeout: 5000 }) };
  }

  async pageState() {
    if (!this.page) return {};
    const body = await this.page.evaluate(() => document.body && document.body.innerText)
      .catch((e) => "(no body: " + e.message + ")");
    return { body, console: this.console };
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const browser = await chromium.launch({
    executablePath: opts.executablePath, headless: true, args: launchArgs(opts),
  });
  const session = new Session(browser);
  const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  reply({ ok: true, ready: true, version: browser.version() });
  const commands = ["open", "wait_text", "fill", "click", "text"];
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.cmd === "quit") break;
    try {
      if (!commands.includes(cmd.cmd)) throw new Error("unknown command " + cmd.cmd);
      reply({ ok: true, ...(await session[cmd.cmd](cmd)) });
    } catch (e) {
      reply({ ok: false, error: e.message, ...(await session.pageState()) });
    }
  }
  await browser.close();
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack || e) }) + "\n");
  process.exit(1);
});

// Drives the dashboard in Debian's Chromium (headless) with playwright-core: sees the
// nodes, places a model with the Run button, watches its runners reach ready, chats and
// sees streamed text with tokens/s. Usage: node browser.mjs URL MODEL NODES SCREENSHOT
import { chromium } from "playwright-core";

const [url, model, nodes, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CAIRN_CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
const step = async (name, fn) => {
  try { await fn(); } catch (e) {
    await page.screenshot({ path: screenshot });
    console.error(`${name}: ${e.message.split("\n")[0]}`);
    await browser.close();
    process.exit(1);
  }
};
await page.goto(url);
await step("nodes", () => page.waitForFunction(
  (n) => document.querySelectorAll(".node-row").length === n && document.querySelectorAll("circle.node").length === n,
  Number(nodes), { timeout: 20000 }));
await step("empty state", () => page.getByText("No instances: place a model below.").waitFor({ timeout: 5000 }));
await step("run button", () => page.locator(`button[data-run="${model}"]`).click());
await step("runners ready", () => page.waitForFunction(
  () => { const r = [...document.querySelectorAll(".runner")];
          return r.length > 0 && r.every((e) => e.classList.contains("ready")); }, null, { timeout: 60000 }));
await step("chat", async () => {
  await page.locator("#chat-model").selectOption(model);
  await page.locator("#chat-input").fill("Tell me a story");
  await page.locator("#chat-send").click();
  await page.waitForFunction(() => {
    const log = document.getElementById("chat-log").textContent;
    return log.includes("assistant: ") && log.split("assistant: ")[1].trim().length > 10 &&
           /tokens\/s/.test(document.getElementById("chat-rate").textContent);
  }, null, { timeout: 60000 });
});
await page.screenshot({ path: screenshot });
await browser.close();
if (errors.length) { console.error(`page errors: ${errors.join("; ")}`); process.exit(1); }
console.log("dashboard: 3 nodes shown, model placed with the button, runners ready, chat streamed");

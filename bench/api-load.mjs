// N concurrent streaming completions against a node's OpenAI-compatible API (plain fetch).
// Usage: node api-load.mjs BASE_URL[,BASE_URL...] MODEL N TOKENS EXPECTED.json
// (requests go round the nodes given: each node's API serves 16 requests at a time)
// EXPECTED.json maps each prompt to its single-process greedy text. Prints time to first
// token and per-stream tokens/s (p50, p99), and whether every stream was exactly right.
import { readFileSync } from "node:fs";

const [bases, model, nText, tokensText, expectedPath] = process.argv.slice(2);
const urls = bases.split(",");
const n = Number(nText), maxTokens = Number(tokensText);
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
const prompts = Object.keys(expected);

async function one(i) {
  const prompt = prompts[i % prompts.length];
  const start = performance.now();
  const res = await fetch(urls[i % urls.length] + "/v1/completions", {
    method: "POST",
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  const decoder = new TextDecoder();
  let pending = "", text = "", first = null, chunks = 0;
  for await (const bytes of res.body) {
    pending += decoder.decode(bytes, { stream: true });
    let cut;
    while ((cut = pending.indexOf("\n\n")) >= 0) {
      const event = pending.slice(0, cut);
      pending = pending.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const piece = JSON.parse(event.slice(6)).choices?.[0]?.text ?? "";
      if (piece.length > 0) {
        if (first === null) first = performance.now();
        chunks++;
      }
      text += piece;
    }
  }
  const end = performance.now();
  return { ok: text === expected[prompt], ttft: first - start,
           rate: maxTokens / ((end - first) / 1000) };
}

const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1,
                                                                   Math.floor(p * xs.length))];
const wall = performance.now();
const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
const seconds = (performance.now() - wall) / 1000;
const ttft = results.map((r) => r.ttft), rate = results.map((r) => r.rate);
console.log(`${n} streams of ${maxTokens} tokens: ${results.filter((r) => r.ok).length}/${n} exact;`
  + ` time to first token p50 ${pct(ttft, 0.5).toFixed(0)} ms, p99 ${pct(ttft, 0.99).toFixed(0)} ms;`
  + ` per-stream tokens/s p50 ${pct(rate, 0.5).toFixed(1)}, p99 (slowest) ${pct(rate, 0.01).toFixed(1)};`
  + ` aggregate ${(n * maxTokens / seconds).toFixed(1)} tokens/s in ${seconds.toFixed(1)} s`);
process.exit(results.every((r) => r.ok) ? 0 : 1);

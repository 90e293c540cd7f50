// An Ollama-style client over plain HTTP (fetch): /api/chat streamed (NDJSON) and whole,
// /api/generate whole, /api/tags and /api/version. Usage: node ollama.mjs BASE MODEL PROMPT N
// Prints one JSON object with what it got.
const [base, model, prompt, n] = process.argv.slice(2);
const options = { temperature: 0, num_predict: Number(n) };
const messages = [{ role: "user", content: prompt }];
const out = {};

async function post(path, body) {
  const res = await fetch(base + path, { method: "POST", body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

let r = await post("/api/chat", { model, messages, options });
let lines = r.text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
out.chat_stream = lines.map((l) => l.message.content).join("");
out.chat_stream_lines = lines.length;
out.chat_stream_last = { done: lines.at(-1).done, reason: lines.at(-1).done_reason,
                         eval_count: lines.at(-1).eval_count };

r = await post("/api/chat", { model, messages, options, stream: false });
out.chat = JSON.parse(r.text).message.content;

r = await post("/api/chat", { model, messages, options, stream: false, logprobs: true,
                              top_logprobs: 1 });
const lp = JSON.parse(r.text);
out.logprobs = { entries: lp.logprobs.length, eval_count: lp.eval_count,
                 spelled: lp.logprobs.map((e) => e.token).join("") === lp.message.content,
                 greedy: lp.logprobs.every((e) => e.top_logprobs[0].token === e.token) };

r = await post("/api/generate", { model, prompt, options, stream: false });
out.generate = JSON.parse(r.text).response;

out.tags = (await (await fetch(base + "/api/tags")).json()).models.map((m) => m.name);
out.version = (await (await fetch(base + "/api/version")).json()).version;
r = await post("/api/chat", { model, messages: "not a list" });
out.bad_request = r.status;
console.log(JSON.stringify(out));

// Malformed and hostile requests against a node's API: each gets a clear 4xx in its API's
// error form, and the node keeps serving. Usage: node malformed.mjs BASE MODEL
// Prints one line per failed expectation and exits 1 if there was any.
const [base, model] = process.argv.slice(2);
let failures = 0;

async function expect(name, method, path, body, status, check) {
  let res, text;
  try {
    // a request the node cannot serve must be answered at once, not retried in vain
    res = await fetch(base + path, { method, body, signal: AbortSignal.timeout(20000) });
    text = await res.text();
  } catch (e) {
    console.log(`${name}: request failed: ${e.message}`);
    failures++;
    return;
  }
  let json = null;
  try { json = JSON.parse(text); } catch { /* checked below */ }
  const problem = res.status !== status ? `status ${res.status}, expected ${status}`
                : !json ? "the answer is not JSON"
                : check && !check(json) ? `unexpected answer ${text.slice(0, 200)}` : null;
  if (problem) {
    console.log(`${name}: ${problem}`);
    failures++;
  }
}

const openai = (j) => typeof j.error?.message === "string" && j.error.message.length > 0 &&
                      typeof j.error.type === "string";
const ollama = (j) => typeof j.error === "string" && j.error.length > 0;
const messages = [{ role: "user", content: "Hi" }];
const chat = (extra) => JSON.stringify({ model, messages, max_tokens: 4, ...extra });
const huge = "x".repeat(9 * 1024 * 1024);
const longPrompt = "Once upon a time ".repeat(400);
// ~800 nested arrays: enough to overflow an API thread's stack in a recursive parser
const deep = `{"model":"${model}","prompt":"x","x":${"[".repeat(800)}${"]".repeat(800)}}`;
const nests = (shape) => (j) => shape(j) && /nests deeper than 64 levels/.test(
  typeof j.error === "string" ? j.error : j.error.message);
// what the link to the runners cannot carry: a conversation nested past its 32 levels, a
// prompt or a stop list over its 1 MiB
let nestedContent = "x";
for (let i = 0; i < 40; i++) nestedContent = [nestedContent];
const mib = "y".repeat(1024 * 1024 + 16);
const stops = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(140 * 1024));
const linkLimit = (shape) => (j) => shape(j) &&
  /runners/.test(typeof j.error === "string" ? j.error : j.error.message);
const deepRoutes = [["/generate", openai], ["/v1/chat/completions", openai],
                    ["/v1/completions", openai], ["/api/chat", ollama], ["/api/generate", ollama],
                    ["/instance", openai], ["/models/pull", openai]];

const cases = [
  ["not JSON", "POST", "/v1/chat/completions", "{nope", 400, openai],
  ["not an object", "POST", "/v1/chat/completions", "[1,2]", 400, openai],
  ["empty object", "POST", "/v1/chat/completions", "{}", 400, openai],
  ["messages not a list", "POST", "/v1/chat/completions",
   JSON.stringify({ model, messages: "hi" }), 400, openai],
  ["model not a string", "POST", "/v1/chat/completions", JSON.stringify({ model: 7, messages }),
   400, openai],
  ["n = 2", "POST", "/v1/chat/completions", chat({ n: 2 }), 400, openai],
  ["temperature a string", "POST", "/v1/chat/completions", chat({ temperature: "hot" }), 400,
   openai],
  ["temperature too high", "POST", "/v1/chat/completions", chat({ temperature: 1000 }), 400,
   openai],
  ["negative max_tokens", "POST", "/v1/chat/completions", chat({ max_tokens: -1 }), 400, openai],
  ["too many stop strings", "POST", "/v1/chat/completions",
   chat({ stop: Array.from({ length: 40 }, (_, i) => `s${i}`) }), 400, openai],
  ["stream not a boolean", "POST", "/v1/chat/completions", chat({ stream: "yes" }), 400, openai],
  ["top_logprobs too many", "POST", "/v1/chat/completions",
   chat({ logprobs: true, top_logprobs: 21 }), 400, openai],
  ["logprobs a number in chat", "POST", "/v1/chat/completions", chat({ logprobs: 3 }), 400,
   openai],
  ["completion logprobs over 5", "POST", "/v1/completions",
   JSON.stringify({ model, prompt: "Once", logprobs: 6 }), 400, openai],
  ["unknown model", "POST", "/v1/chat/completions",
   JSON.stringify({ model: "nope.gguf", messages }), 404, openai],
  ["wrong method", "GET", "/v1/chat/completions", undefined, 405, openai],
  ["unknown /v1 path", "GET", "/v1/nothing", undefined, 404, openai],
  ["body over the limit", "POST", "/v1/completions", huge, 413, null],
  ["prompt missing", "POST", "/v1/completions", JSON.stringify({ model }), 400, openai],
  ["prompt longer than the context", "POST", "/v1/completions",
   JSON.stringify({ model, prompt: longPrompt, max_tokens: 4 }), 400, openai],
  ["ollama: not JSON", "POST", "/api/chat", "{", 400, ollama],
  ["ollama: no messages", "POST", "/api/chat", JSON.stringify({ model }), 400, ollama],
  ["ollama: options not an object", "POST", "/api/generate",
   JSON.stringify({ model, prompt: "x", options: 3 }), 400, ollama],
  ["place: not JSON", "POST", "/instance", "{{", 400, null],
  ["place: too many nodes", "POST", "/instance", JSON.stringify({ model, nodes: 99 }), 400, null],
  ["place: half a node", "POST", "/instance", JSON.stringify({ model, nodes: 0.5 }), 400, openai],
  ["preview: NaN nodes", "GET", `/instance/previews?model=${model}&nodes=NaN`, undefined, 400,
   openai],
  ["delete: an encoded NUL in the path", "DELETE", "/instance/i-00000000%00x", undefined, 400,
   openai],
  ["delete: not an id", "DELETE", "/instance/bad%20id", undefined, 400, null],
  ["delete: no such instance", "DELETE", "/instance/i-00000000", undefined, 404, null],
  ["messages nested past the link's depth", "POST", "/v1/chat/completions",
   chat({ messages: [{ role: "user", content: "hi", parts: nestedContent }] }), 400,
   linkLimit(openai)],
  ["ollama: messages nested past the link's depth", "POST", "/api/chat",
   JSON.stringify({ model, messages: [{ role: "user", content: "hi", parts: nestedContent }] }),
   400, linkLimit(ollama)],
  ["prompt over the link's limit", "POST", "/v1/completions",
   JSON.stringify({ model, prompt: mib, max_tokens: 4 }), 400, linkLimit(openai)],
  ["stop list over the link's limit", "POST", "/generate",
   JSON.stringify({ model, prompt: "Once", stop: stops, max_tokens: 4 }), 400, linkLimit(openai)],
  ...deepRoutes.map(([path, shape]) => [`nested 800 deep: ${path}`, "POST", path, deep, 400,
                                        nests(shape)]),
];
for (const c of cases) await expect(...c);

// the node still serves a good request
await expect("a good request afterwards", "POST", "/v1/completions",
             JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 4, temperature: 0 }),
             200, (j) => j.choices?.[0]?.text?.length > 0 && j.usage?.completion_tokens === 4);
console.log(`${cases.length + 1 - failures}/${cases.length + 1} malformed-request expectations met`);
process.exit(failures ? 1 : 0);

// Drives a cairn node's OpenAI-compatible API with the official `openai` client, unmodified.
// Usage: node client.mjs BASE_URL MODEL PROMPT MAX_TOKENS
// Prints one JSON object: the text and usage of a non-streamed and a streamed completion
// and chat completion, and the model list.
import OpenAI from "openai";

const [baseURL, model, prompt, maxTokens] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "not-needed", maxRetries: 0, timeout: 60000 });
const max_tokens = Number(maxTokens);
const out = {};

const completion = await client.completions.create({ model, prompt, max_tokens, temperature: 0 });
out.completion = { text: completion.choices[0].text, finish: completion.choices[0].finish_reason,
                   usage: completion.usage };

let streamed = "";
let streamUsage = null;
const stream = await client.completions.create({ model, prompt, max_tokens, temperature: 0,
                                                 stream: true,
                                                 stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.choices.length > 0) streamed += chunk.choices[0].text;
  if (chunk.usage) streamUsage = chunk.usage;
}
out.completion_stream = { text: streamed, usage: streamUsage };

const messages = [{ role: "user", content: prompt }];
const chat = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0 });
out.chat = { text: chat.choices[0].message.content, role: chat.choices[0].message.role,
             finish: chat.choices[0].finish_reason, usage: chat.usage };

let chatStreamed = "";
let chatUsage = null;
const chatStream = await client.chat.completions.create({
  model, messages, max_tokens, temperature: 0, stream: true,
  stream_options: { include_usage: true } });
for await (const chunk of chatStream) {
  if (chunk.choices.length > 0 && chunk.choices[0].delta.content) {
    chatStreamed += chunk.choices[0].delta.content;
  }
  if (chunk.usage) chatUsage = chunk.usage;
}
out.chat_stream = { text: chatStreamed, usage: chatUsage };

// Log-probabilities. Decoding is greedy, so each token is its own most likely alternative.
const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
const lp = await client.completions.create({ model, prompt, max_tokens, temperature: 0,
                                             logprobs: 3 });
const cols = lp.choices[0].logprobs;
check(cols.tokens.length === lp.usage.completion_tokens, "completion: one entry per token");
check(cols.tokens.join("") === lp.choices[0].text, "completion: tokens spell the text");
cols.tokens.forEach((t, i) => {
  const alts = Object.entries(cols.top_logprobs[i]);
  check(alts.length >= 3 && alts.length <= 4, `completion: alternatives of token ${i}`);
  check(cols.token_logprobs[i] <= 0, `completion: logprob of token ${i}`);
  check(Math.max(...alts.map(([, v]) => v)) === cols.token_logprobs[i] &&
        cols.top_logprobs[i][t] === cols.token_logprobs[i], `completion: greedy token ${i}`);
  check(i === 0 || cols.text_offset[i] === cols.text_offset[i - 1] + [...cols.tokens[i - 1]].length,
        `completion: text offset ${i}`);
});
const checkContent = (content, what) => {
  content.forEach((e, i) => {
    check(e.logprob <= 0 && e.top_logprobs.length === 2, `${what}: entry ${i}`);
    check(e.top_logprobs[0].token === e.token && e.top_logprobs[0].logprob === e.logprob &&
          e.top_logprobs[1].logprob <= e.logprob, `${what}: greedy token ${i}`);
    check(Buffer.from(e.bytes).toString("utf8") === e.token, `${what}: bytes of token ${i}`);
  });
};
const lpChat = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0,
                                                      logprobs: true, top_logprobs: 2 });
const content = lpChat.choices[0].logprobs.content;
check(content.length === lpChat.usage.completion_tokens, "chat: one entry per token");
check(content.map((e) => e.token).join("") === lpChat.choices[0].message.content,
      "chat: tokens spell the text");
checkContent(content, "chat");
const lpStream = await client.chat.completions.create({
  model, messages, max_tokens, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
const streamedContent = [];
for await (const chunk of lpStream) {
  if (chunk.choices[0]?.logprobs) streamedContent.push(...chunk.choices[0].logprobs.content);
}
checkContent(streamedContent, "chat stream");
check(JSON.stringify(streamedContent) === JSON.stringify(content), "chat stream: same entries");
out.logprobs = { tokens: content.length, problems };
try {
  await client.chat.completions.create({ model, messages, max_tokens, top_logprobs: 2 });
  out.top_without_logprobs = "accepted";
} catch (e) {
  out.top_without_logprobs = e.status;
}

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ model: "no-such-model.gguf", messages, max_tokens });
  out.unknown_model = "accepted";
} catch (e) {
  out.unknown_model = e.status;
}
console.log(JSON.stringify(out));

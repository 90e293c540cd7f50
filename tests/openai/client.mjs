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

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ model: "no-such-model.gguf", messages, max_tokens });
  out.unknown_model = "accepted";
} catch (e) {
  out.unknown_model = e.status;
}
console.log(JSON.stringify(out));

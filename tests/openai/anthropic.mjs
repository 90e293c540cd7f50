// Drives a cairn node's Anthropic Messages API with the official `@anthropic-ai/sdk` client,
// unmodified. Usage: node anthropic.mjs BASE_URL MODEL PROMPT MAX_TOKENS [KEYED_BASE_URL KEY]
// Prints one JSON object: a whole and two streamed messages (messages.stream and
// stream: true), countTokens, the same request's chat completion (plain HTTP), a stop
// sequence, the errors the SDK raises and, with a keyed node, its answers to keys given as
// x-api-key and as a bearer token.
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, model, prompt, maxTokens, keyedURL, key] = process.argv.slice(2);
const options = { maxRetries: 0, timeout: 60000 };
const client = new Anthropic({ baseURL, apiKey: "not-needed", ...options });
const max_tokens = Number(maxTokens);
const messages = [{ role: "user", content: prompt }];
const out = {};

const textOf = (message) => message.content.map((b) => b.text).join("");
const summary = (m) => ({ text: textOf(m), type: m.type, role: m.role, model: m.model,
                          id: /^msg_[0-9a-f]+$/.test(m.id), blocks: m.content.map((b) => b.type),
                          stop_reason: m.stop_reason, stop_sequence: m.stop_sequence,
                          usage: { input_tokens: m.usage.input_tokens,
                                   output_tokens: m.usage.output_tokens } });

const whole = await client.messages.create({
  model, messages, max_tokens, temperature: 0, metadata: { user_id: "test" },
  system: [{ type: "text", text: "", cache_control: { type: "ephemeral" } }],
  tools: [{ name: "noop", description: "unused", input_schema: { type: "object" } }] });
out.whole = summary(whole);

const stream = client.messages.stream({ model, messages, max_tokens, temperature: 0 });
let deltas = "";
stream.on("text", (text) => { deltas += text; });
out.stream = summary(await stream.finalMessage());
out.stream.deltas = deltas;

// stream: true gives the raw events: their order, and what message_start says
const events = [];
let started = null;
const raw = await client.messages.create({ model, messages, max_tokens, temperature: 0,
                                          stream: true });
for await (const event of raw) {
  if (events[events.length - 1] !== event.type) events.push(event.type);
  if (event.type === "message_start") started = event.message;
  if (event.type === "message_delta") out.raw_delta = event;
}
out.events = events;
out.start = { input_tokens: started.usage.input_tokens, content: started.content,
              stop_reason: started.stop_reason };

out.count = (await client.messages.countTokens({ model, messages })).input_tokens;

// the same request as a chat completion
const chat = await fetch(`${baseURL}/v1/chat/completions`, {
  method: "POST", headers: { "content-type": "application/json" },
  body: JSON.stringify({ model, messages, max_tokens, temperature: 0 }) });
const completion = await chat.json();
out.chat = completion.choices[0].message.content;
out.chat_prompt_tokens = completion.usage.prompt_tokens;

// a stop sequence taken from the middle of the greedy answer ends the text right before it,
// and is named among others that never come
const words = out.whole.text.split(" ");
const sequence = " " + words[Math.floor(words.length / 2)];
const stopped = await client.messages.create({ model, messages, max_tokens, temperature: 0,
                                              stop_sequences: ["\u00a7never", sequence, "\u00b6"] });
out.stopped = { stop_reason: stopped.stop_reason, stop_sequence: stopped.stop_sequence === sequence,
                text: textOf(stopped) === out.whole.text.slice(0, out.whole.text.indexOf(sequence)) };
// streamed, message_delta names it too
const stoppedStream = client.messages.stream({ model, messages, max_tokens, temperature: 0,
                                               stop_sequences: [sequence, "\u00b6"] });
const stoppedFinal = await stoppedStream.finalMessage();
out.stopped_stream = [stoppedFinal.stop_reason, stoppedFinal.stop_sequence === sequence];

async function failure(call) {
  try {
    await call();
    return "no error";
  } catch (e) {
    return { status: e.status, sdk_class: e.constructor.name, type: e.type,
             shape: e.error?.type, message: typeof e.error?.error?.message === "string" };
  }
}
out.no_max_tokens = await failure(() => client.messages.create({ model, messages }));
out.bad_role = await failure(() => client.messages.create({
  model, max_tokens, messages: [{ role: "system", content: "x" }] }));
out.unknown_model = await failure(() => client.messages.create({
  model: "absent.gguf", messages, max_tokens }));
out.bad_stream_request = await failure(async () => {
  const s = await client.messages.create({ model, max_tokens, stream: true,
                                          messages: [{ role: "user", content: [{ type: "image" }] }] });
  for await (const _ of s) { /* drained */ }
});

if (keyedURL) {
  const keyed = (auth) => new Anthropic({ baseURL: keyedURL, ...auth, ...options });
  const ask = (c) => c.messages.create({ model, messages, max_tokens: 2, temperature: 0 });
  out.keyed = {
    api_key: (await ask(keyed({ apiKey: key }))).type,
    bearer: (await ask(keyed({ authToken: key }))).type,
    wrong: await failure(() => ask(keyed({ apiKey: "wrong" }))),
    count_wrong: await failure(() => keyed({ apiKey: "wrong" }).messages.countTokens({ model, messages })),
  };
}
console.log(JSON.stringify(out));

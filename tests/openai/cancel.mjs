// POST /v1/cancel/{id} stops a stream in progress, sent to the node serving it or to any
// other node of the cluster. Usage: node cancel.mjs BASE MODEL [CANCEL_BASE]
// Prints {"cancel":status,"again":status,"pieces":N,"finish":reason,"after_ms":ms}.
const [base, model, cancelBase = base] = process.argv.slice(2);
const res = await fetch(base + "/v1/completions", {
  method: "POST",
  body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 200, temperature: 0,
                         stream: true }),
});
const decoder = new TextDecoder();
let pending = "", pieces = 0, finish = null, cancel = null, again = null, cancelledAt = 0;
for await (const bytes of res.body) {
  pending += decoder.decode(bytes, { stream: true });
  let cut;
  while ((cut = pending.indexOf("\n\n")) >= 0) {
    const event = pending.slice(0, cut);
    pending = pending.slice(cut + 2);
    if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
    const chunk = JSON.parse(event.slice(6));
    const c = chunk.choices?.[0];
    if (!c) continue;
    if (c.finish_reason) finish = c.finish_reason;
    else pieces++;
    if (pieces === 3 && cancel === null) {
      cancelledAt = performance.now();
      cancel = (await fetch(`${cancelBase}/v1/cancel/${chunk.id}`, { method: "POST" })).status;
      again = (await fetch(`${cancelBase}/v1/cancel/${chunk.id}`, { method: "POST" })).status;
    }
  }
}
console.log(JSON.stringify({ cancel, again, pieces, finish,
                             after_ms: Math.round(performance.now() - cancelledAt) }));

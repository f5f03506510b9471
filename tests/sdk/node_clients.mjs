// Drives poolgate with the official Node SDKs, unmodified: OpenAI (Chat Completions, Responses,
// models), Anthropic (Messages, token counting) and @google/genai (generateContent, streaming,
// countTokens), unary and streaming.
//
// Usage: node node_clients.mjs BASE_URL API_KEY MODEL
// Prints one JSON object per case, as python_clients.py does. Versions pinned in package.json.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";

const [base, key, model] = process.argv.slice(2);

async function run(name, fn) {
  try {
    const text = await fn();
    console.log(JSON.stringify({ case: name, ok: true, text }));
  } catch (e) {
    console.log(JSON.stringify({ case: name, ok: false, error: `${e?.name}: ${e?.message}` }));
  }
}

const oa = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000 });
const an = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 30_000 });
const gm = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: base, timeout: 30_000 } });
const msgs = [{ role: "user", content: "Say hello" }];

await run("node.openai.chat", async () => (await oa.chat.completions.create({ model, messages: msgs })).choices[0].message.content);
await run("node.openai.chat.stream", async () => {
  let out = "";
  for await (const ev of await oa.chat.completions.create({ model, messages: msgs, stream: true })) {
    out += ev.choices?.[0]?.delta?.content ?? "";
  }
  return out;
});
await run("node.openai.responses", async () => (await oa.responses.create({ model, input: "Say hello" })).output_text);
await run("node.openai.responses.stream", async () => {
  let out = "";
  for await (const ev of await oa.responses.create({ model, input: "Say hello", stream: true })) {
    if (ev.type === "response.output_text.delta") out += ev.delta;
  }
  return out;
});
await run("node.openai.models.list", async () => {
  const ids = [];
  for await (const m of oa.models.list()) ids.push(m.id);
  return ids.join(",");
});
await run("node.anthropic.messages", async () => {
  const r = await an.messages.create({ model, max_tokens: 32, messages: msgs });
  return r.content.filter((b) => b.type === "text").map((b) => b.text).join("");
});
await run("node.anthropic.messages.stream", async () => {
  const s = an.messages.stream({ model, max_tokens: 32, messages: msgs });
  let out = "";
  s.on("text", (t) => { out += t; });
  await s.finalMessage();
  return out;
});
await run("node.anthropic.count_tokens", async () => String((await an.messages.countTokens({ model, messages: msgs })).input_tokens));
await run("node.genai.generate", async () => (await gm.models.generateContent({ model, contents: "Say hello" })).text);
await run("node.genai.generate.stream", async () => {
  let out = "";
  for await (const c of await gm.models.generateContentStream({ model, contents: "Say hello" })) out += c.text ?? "";
  return out;
});
await run("node.genai.count_tokens", async () => String((await gm.models.countTokens({ model, contents: "Say hello to the world" })).totalTokens));

// The official `openai` client against a bitnetc server (tests/test_server.cpp runs it):
// completions and chat completions, each whole and streamed, greedy. Prints one JSON
// object with the texts, finish reasons and usage for the test to compare with solo runs.
// usage: node openai_client.mjs BASE_URL PROMPT CHAT_MESSAGE MAX_TOKENS
import OpenAI from "openai";

const [baseURL, prompt, message, maxTokens] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", timeout: 60_000, maxRetries: 0 });
const max_tokens = Number(maxTokens);
const model = "any-name-the-server-ignores";

const completion = await client.completions.create({ model, prompt, max_tokens, temperature: 0 });
let completionStream = "";
let completionStreamFinish = null;
for await (const chunk of await client.completions.create({ model, prompt, max_tokens, temperature: 0, stream: true })) {
  completionStream += chunk.choices[0].text;
  completionStreamFinish = chunk.choices[0].finish_reason ?? completionStreamFinish;
}

const messages = [{ role: "user", content: message }];
const chat = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0 });
let chatStream = "";
let chatStreamFinish = null;
for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens, temperature: 0, stream: true })) {
  chatStream += chunk.choices[0].delta.content ?? "";
  chatStreamFinish = chunk.choices[0].finish_reason ?? chatStreamFinish;
}

const models = await client.models.list();
console.log(JSON.stringify({
  completion: completion.choices[0].text,
  completion_finish: completion.choices[0].finish_reason,
  completion_usage: completion.usage,
  completion_stream: completionStream,
  completion_stream_finish: completionStreamFinish,
  chat: chat.choices[0].message.content,
  chat_role: chat.choices[0].message.role,
  chat_finish: chat.choices[0].finish_reason,
  chat_usage: chat.usage,
  chat_stream: chatStream,
  chat_stream_finish: chatStreamFinish,
  models: models.data.map((m) => m.id),
}));

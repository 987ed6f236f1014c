/**
 * Gateway: the chat playground. A person picks a model (a group), gives a client API key of the
 * workspace (kept only in this page: admin tokens never call models), asks, and reads the answer
 * as it streams (server-sent events from the OpenAI-compatible endpoint), with the model
 * instance that served it (`x-modelyard-instance`) and how many were tried.
 */
import { gatewayClient } from "@modelyard/clients";
import { useRef, useState } from "preact/hooks";

import {  } from "./api.ts";
import { useConsole } from "./context.ts";
import { useGroups } from "./keys.tsx";
import { Field, ListState, Options } from "./ui.tsx";

type Served = { instance: string | null; attempts: string | null; warning: string | null };
type Turn = { role: "user" | "assistant"; content: string };

/** Return the text deltas of server-sent `chat.completion.chunk` events, as they come. */
export async function* chunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        try {
          const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
          const text = parsed.choices?.[0]?.delta?.content;
          if (text) yield text;
        } catch {
          // Not JSON (a comment or keep-alive): nothing to show.
        }
      }
    }
  }
}

/** Return an OpenAI error body's message (`{"error": {"message": ...}}`), if it is one. */
function openaiError(text: string): string | null {
  try {
    const body = JSON.parse(text) as { error?: { message?: string } };
    return body.error?.message ?? null;
  } catch {
    return null;
  }
}

export function Playground() {
  const { config } = useConsole();
  const groups = useGroups();
  const [group, setGroup] = useState("");
  const [key, setKey] = useState("");
  const [message, setMessage] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [answer, setAnswer] = useState<string | null>(null);
  const [served, setServed] = useState<Served | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [streaming, setStreaming] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const chosen = group || groups.items?.[0]?.name || "";

  async function send() {
    const question: Turn = { role: "user", content: message.trim() };
    const history = [...turns, question];
    setTurns(history);
    setMessage("");
    setAnswer("");
    setServed(null);
    setFailure(null);
    setStreaming(true);
    const controller = new AbortController();
    abort.current = controller;
    let text = "";
    try {
      // A client of the OpenAI API with the person's API key (not their sign-in token).
      const client = gatewayClient({ baseUrl: config.gateway_url, token: key.trim() });
      const { response, error } = await client.POST("/v1/chat/completions", {
        body: { model: chosen, stream: true, messages: history },
        parseAs: "stream",
        signal: controller.signal,
      });
      setServed({
        instance: response.headers.get("x-modelyard-instance"),
        attempts: response.headers.get("x-modelyard-attempts"),
        warning: response.headers.get("x-modelyard-policy-warning"),
      });
      if (!response.ok || !response.body) {
        // openapi-fetch has read a refused answer's body already: `error` is OpenAI's error.
        const said = typeof error === "string" ? openaiError(error) ?? error : (error as { error?: { message?: string } } | undefined)?.error?.message;
        setFailure(`${response.status}: ${said || response.statusText}`);
        setAnswer(null);
        setTurns(turns);
        setMessage(question.content);
        return;
      }
      for await (const delta of chunks(response.body)) {
        text += delta;
        setAnswer(text);
      }
      setTurns([...history, { role: "assistant", content: text }]);
      setAnswer(null);
    } catch (e) {
      if (controller.signal.aborted) {
        setTurns([...history, { role: "assistant", content: `${text} [stopped]` }]);
        setAnswer(null);
      } else {
        setFailure("The gateway cannot be reached. Check your connection and try again.");
        setAnswer(null);
      }
    } finally {
      setStreaming(false);
      abort.current = null;
    }
  }

  return (
    <article aria-labelledby="playground-title">
      <h2 id="playground-title">Playground</h2>
      <ListState what="the models" list={groups} empty="No models yet: create one under Models first.">
        {(items) => (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (!streaming && message.trim() && key.trim()) void send();
            }}
          >
            <div class="grid">
              <Field label="Model">
                {(a) => (
                  <select {...a} value={chosen} onChange={(e) => (setGroup(e.currentTarget.value), setTurns([]))}>
                    <Options choices={items.map((g) => [g.name, g.name] as const)} />
                  </select>
                )}
              </Field>
              <Field label="API key" required hint="A client key of this workspace (sk-…): kept only in this page, never stored.">
                {(a) => <input {...a} type="password" autoComplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} />}
              </Field>
            </div>
            <section aria-label="Conversation" class="conversation" aria-live="polite">
              {turns.length === 0 && answer === null && <p class="muted">Ask something to see the model's answer stream in.</p>}
              {turns.map((t, i) => (
                <p key={i} class={`turn ${t.role}`}>
                  <strong>{t.role === "user" ? "You" : chosen}:</strong> {t.content}
                </p>
              ))}
              {answer !== null && (
                <p class="turn assistant" aria-busy={streaming}>
                  <strong>{chosen}:</strong> <span aria-label="The answer so far">{answer}</span>
                </p>
              )}
            </section>
            {served?.instance && (
              <p role="status" class="served">
                Served by <strong>{served.instance}</strong>
                {served.attempts && served.attempts !== "1" ? ` after ${served.attempts} attempts` : " (first attempt)"}.
                {served.warning && <small class="warning block">Policy: {served.warning}</small>}
              </p>
            )}
            {failure && (
              <p role="alert" class="error">
                {failure}
              </p>
            )}
            <Field label="Message" required>
              {(a) => (
                <textarea
                  {...a}
                  rows={3}
                  value={message}
                  onInput={(e) => setMessage(e.currentTarget.value)}
                  onKeyDown={(e) => {
                    // Ctrl/Cmd+Enter sends, as in most chat tools; Enter alone is a new line.
                    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
                  }}
                />
              )}
            </Field>
            <div class="actions">
              <button type="submit" aria-busy={streaming} disabled={streaming || !message.trim() || !key.trim()}>
                Send
              </button>
              {streaming && (
                <button type="button" class="secondary" onClick={() => abort.current?.abort()}>
                  Stop
                </button>
              )}
              {turns.length > 0 && !streaming && (
                <button type="button" class="secondary outline" onClick={() => (setTurns([]), setServed(null), setFailure(null))}>
                  Clear the conversation
                </button>
              )}
            </div>
          </form>
        )}
      </ListState>
    </article>
  );
}

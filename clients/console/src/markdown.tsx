import DOMPurify from "dompurify";
import { marked } from "marked";
import { useState } from "preact/hooks";

import { useId } from "./ui.tsx";

/** Return markdown as sanitised HTML (descriptions are written by people, shown to others). */
export function markdownHtml(text: string): string {
  return DOMPurify.sanitize(marked.parse(text, { async: false, gfm: true }));
}

export function Markdown(props: { text: string }) {
  return <div class="markdown" dangerouslySetInnerHTML={{ __html: markdownHtml(props.text) }} />;
}

/** A markdown textarea with Write and Preview tabs (WAI-ARIA tabs pattern). */
export function MarkdownEditor(props: {
  label: string;
  value: string;
  onInput: (value: string) => void;
  error?: string | undefined;
  hint?: string;
}) {
  const id = useId("md");
  const [tab, setTab] = useState<"write" | "preview">("write");
  const tabs = [
    ["write", "Write"],
    ["preview", "Preview"],
  ] as const;
  const describedBy = [`${id}-hint`, props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div class="markdown-editor">
      <div class="md-head">
        <span id={`${id}-label`}>{props.label}</span>
        <div role="tablist" aria-label={`${props.label} editor`}>
          {tabs.map(([key, label]) => (
            <button
              type="button"
              role="tab"
              key={key}
              id={`${id}-tab-${key}`}
              aria-selected={tab === key}
              aria-controls={`${id}-panel`}
              tabIndex={tab === key ? 0 : -1}
              class={tab === key ? "tab selected" : "tab"}
              onClick={() => setTab(key)}
              onKeyDown={(e) => {
                if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
                  const next = tab === "write" ? "preview" : "write";
                  setTab(next);
                  document.getElementById(`${id}-tab-${next}`)?.focus();
                }
              }}
            >
              {label}
            </button>
          ))}
        </div>
      </div>
      <div id={`${id}-panel`} role="tabpanel" aria-labelledby={`${id}-tab-${tab}`}>
        {tab === "write" ? (
          <textarea
            id={`${id}-input`}
            aria-labelledby={`${id}-label`}
            aria-describedby={describedBy}
            aria-invalid={props.error ? "true" : undefined}
            rows={6}
            value={props.value}
            onInput={(e) => props.onInput(e.currentTarget.value)}
          />
        ) : props.value.trim() ? (
          <div class="preview" aria-label={`${props.label} preview`}>
            <Markdown text={props.value} />
          </div>
        ) : (
          <p class="preview muted">Nothing to preview yet.</p>
        )}
      </div>
      <small id={`${id}-hint`}>{props.hint ?? "Markdown: **bold**, lists, links, headings."}</small>
      {props.error && (
        <small id={`${id}-error`} class="field-error">
          {props.error}
        </small>
      )}
    </div>
  );
}

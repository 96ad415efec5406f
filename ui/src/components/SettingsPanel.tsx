import { useEffect, useState } from "react";
import type { SavedPrompt } from "../lib/api";
import { formatTokens } from "../lib/context";
import { type ConversationSettings, LIMITS } from "../lib/store";

interface Props {
  settings: ConversationSettings;
  /** The model's context length (max_model_len), when the server reports it: max tokens cannot exceed it. */
  contextTokens?: number;
  savedPrompts: SavedPrompt[];
  onChange: (patch: Partial<ConversationSettings>) => void;
}

/** Per-conversation settings: system prompt (or a saved one), temperature, max tokens. */
export function SettingsPanel({ settings, contextTokens, savedPrompts, onChange }: Props) {
  return (
    <section className="settings" id="settings-panel" aria-label="Conversation settings">
      <div className="settings-head">
        <label htmlFor="system-prompt">System prompt</label>
        {savedPrompts.length > 0 && (
          <select
            aria-label="Use a saved prompt"
            className="saved-prompts"
            value=""
            onChange={(e) => {
              const chosen = savedPrompts[Number(e.target.value)];
              if (chosen) onChange({ systemPrompt: chosen.text });
            }}
          >
            <option value="">Use a saved prompt…</option>
            {savedPrompts.map((p, i) => (
              <option key={p.title} value={i}>
                {p.title}
              </option>
            ))}
          </select>
        )}
      </div>
      <textarea
        id="system-prompt"
        rows={2}
        value={settings.systemPrompt}
        placeholder="e.g. You are a concise assistant."
        onChange={(e) => onChange({ systemPrompt: e.target.value })}
      />
      <div className="settings-row">
        <div>
          <label htmlFor="temperature">
            Temperature <output htmlFor="temperature">{settings.temperature.toFixed(1)}</output>
          </label>
          <input
            id="temperature"
            type="range"
            min={LIMITS.temperature[0]}
            max={LIMITS.temperature[1]}
            step={0.1}
            value={settings.temperature}
            onChange={(e) => onChange({ temperature: Number(e.target.value) })}
          />
        </div>
        <MaxTokensField
          value={settings.maxTokens}
          max={Math.min(LIMITS.maxTokens[1], contextTokens ?? LIMITS.maxTokens[1])}
          contextTokens={contextTokens}
          onChange={(maxTokens) => onChange({ maxTokens })}
        />
      </div>
    </section>
  );
}

/**
 * The field keeps what is typed (an emptied field stays empty while typing) and saves only whole
 * numbers within 1..max; leaving it with anything else restores the saved value and says why.
 */
export function MaxTokensField({
  value,
  max,
  contextTokens,
  onChange,
}: {
  value: number;
  max: number;
  contextTokens?: number;
  onChange: (value: number) => void;
}) {
  const [draft, setDraft] = useState(String(value));
  const [message, setMessage] = useState("");
  const min = LIMITS.maxTokens[0];
  useEffect(() => setDraft(String(value)), [value]);

  const valid = (text: string) => /^\d+$/.test(text.trim()) && Number(text) >= min && Number(text) <= max;
  const onBlur = () => {
    const text = draft.trim();
    if (valid(text)) {
      setMessage("");
      return;
    }
    if (/^\d+$/.test(text) && Number(text) > max) {
      onChange(max);
      setDraft(String(max));
      setMessage(
        contextTokens
          ? `Set to ${formatTokens(max)}: the model's context holds ${formatTokens(contextTokens)} tokens.`
          : `Set to the most allowed, ${formatTokens(max)}.`,
      );
      return;
    }
    setDraft(String(value));
    setMessage(`Max tokens must be a whole number from ${min} to ${formatTokens(max)}; kept ${formatTokens(value)}.`);
  };

  return (
    <div>
      <label htmlFor="max-tokens">Max tokens</label>
      <input
        id="max-tokens"
        type="text"
        inputMode="numeric"
        value={draft}
        aria-invalid={message !== "" && !valid(draft)}
        aria-describedby="max-tokens-note"
        onChange={(e) => {
          setDraft(e.target.value);
          if (valid(e.target.value)) {
            setMessage("");
            onChange(Number(e.target.value));
          }
        }}
        onBlur={onBlur}
      />
      <span id="max-tokens-note" className="field-note" role="status">
        {message || (contextTokens ? `1 to ${formatTokens(max)} (the model's context)` : "")}
      </span>
    </div>
  );
}

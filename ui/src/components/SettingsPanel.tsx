import { type ConversationSettings, LIMITS } from "../lib/store";

interface Props {
  settings: ConversationSettings;
  onChange: (patch: Partial<ConversationSettings>) => void;
}

/** Per-conversation settings: system prompt, temperature, max tokens. */
export function SettingsPanel({ settings, onChange }: Props) {
  return (
    <section className="settings" id="settings-panel" aria-label="Conversation settings">
      <label htmlFor="system-prompt">System prompt</label>
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
        <div>
          <label htmlFor="max-tokens">Max tokens</label>
          <input
            id="max-tokens"
            type="number"
            min={LIMITS.maxTokens[0]}
            max={LIMITS.maxTokens[1]}
            value={settings.maxTokens}
            onChange={(e) => onChange({ maxTokens: Number(e.target.value) })}
          />
        </div>
      </div>
    </section>
  );
}

import { useEffect, useMemo, useRef, useState } from "react";
import { Composer } from "./components/Composer";
import { MessageItem } from "./components/MessageItem";
import { SettingsPanel } from "./components/SettingsPanel";
import { Sidebar } from "./components/Sidebar";
import { ModelNote } from "./components/ModelNote";
import { StatusBanner } from "./components/StatusBanner";
import { useChat } from "./hooks/useChat";
import { useNow, useReadiness } from "./hooks/useReadiness";
import { ChatClient, type RuntimeConfig } from "./lib/api";
import { newId } from "./lib/store";

export function App({ config }: { config: RuntimeConfig }) {
  const client = useMemo(() => new ChatClient(config), [config]);
  const { readiness, notReadySince, recheck } = useReadiness(client);
  const [models, setModels] = useState<string[]>([]);
  const [preferredModel, setPreferredModel] = useState("");
  const defaultModel = preferredModel || models[0] || "";
  const chat = useChat(client, defaultModel, recheck);
  const { state, active, streaming } = chat;
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const composerRef = useRef<HTMLTextAreaElement>(null);
  const logRef = useRef<HTMLDivElement>(null);
  const ready = readiness?.state === "ready";

  const now = useNow(notReadySince !== null || chat.coolUntil > Date.now());
  const waitS = Math.max(0, Math.ceil((chat.coolUntil - now) / 1000));
  const elapsedS = notReadySince ? (now - notReadySince) / 1000 : 0;

  useEffect(() => {
    document.title = config.title;
  }, [config.title]);

  // The model list, each time the backend becomes ready (it may have been restarted with another model).
  useEffect(() => {
    if (!ready) return;
    client.models().then(setModels, () => setModels(readiness?.state === "ready" ? readiness.models : []));
  }, [ready, client]); // not `readiness`: a re-poll while ready must not re-fetch the list

  // Follow the answer as it streams, unless the reader scrolled up.
  const lastContent = active?.messages.at(-1)?.content;
  useEffect(() => {
    const el = logRef.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 160) el.scrollTop = el.scrollHeight;
  }, [lastContent, active?.messages.length]);

  // After an answer ends (Stop replaced by Send), keep the keyboard in the message box.
  useEffect(() => {
    if (!streaming && document.activeElement === document.body) composerRef.current?.focus();
  }, [streaming]);

  const newConversation = () => {
    chat.dispatch({ type: "create", id: newId(), now: Date.now(), settings: { model: defaultModel } });
    setSidebarOpen(false);
    composerRef.current?.focus();
  };

  const messages = active?.messages ?? [];
  const lastUserIndex = messages.map((m) => m.role).lastIndexOf("user");
  const busy = streaming !== null;
  const blockedReason =
    waitS > 0
      ? `Rate limited: you can send again in ${waitS} s.`
      : readiness?.state === "loading"
        ? "The model is still loading; you can send as soon as it is ready."
        : "";
  const model = active?.settings.model || defaultModel;

  return (
    <div className="app">
      <a className="skip-link" href="#composer-input">
        Skip to message box
      </a>
      <Sidebar
        conversations={state.conversations}
        activeId={state.activeId}
        open={sidebarOpen}
        onNew={newConversation}
        onSelect={(id) => {
          chat.dispatch({ type: "select", id });
          setSidebarOpen(false);
        }}
        onRename={(id, title) => chat.dispatch({ type: "rename", id, title })}
        onDelete={(id) => chat.dispatch({ type: "delete", id })}
      />
      {sidebarOpen && <div className="scrim" onClick={() => setSidebarOpen(false)} aria-hidden="true" />}
      <main className="main">
        <header className="topbar">
          <button
            type="button"
            className="ghost icon menu"
            aria-label="Conversations"
            aria-expanded={sidebarOpen}
            aria-controls="sidebar"
            onClick={() => setSidebarOpen((o) => !o)}
          >
            ☰
          </button>
          <h1 className="title">{active?.title ?? config.title}</h1>
          <label className="model-picker">
            <span className="offscreen">Model</span>
            <select
              value={model}
              onChange={(e) =>
                active
                  ? chat.dispatch({ type: "settings", id: active.id, settings: { model: e.target.value } })
                  : setPreferredModel(e.target.value)
              }
              disabled={models.length === 0}
            >
              {models.length === 0 && <option value="">{ready ? "default model" : "no models yet"}</option>}
              {model && !models.includes(model) && models.length > 0 && <option value={model}>{model} (not served)</option>}
              {models.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </label>
          <button
            type="button"
            className="ghost"
            aria-expanded={settingsOpen}
            aria-controls="settings-panel"
            disabled={!active}
            onClick={() => setSettingsOpen((o) => !o)}
          >
            Settings
          </button>
        </header>
        <StatusBanner readiness={readiness} elapsedS={elapsedS} onRecheck={recheck} />
        {config.modelNote && <ModelNote text={config.modelNote} />}
        {chat.saveFailed && (
          <div className="banner warn" role="status">
            This browser refused to save the conversations (storage full or private mode); they will be lost on reload.
          </div>
        )}
        {settingsOpen && active && (
          <SettingsPanel
            settings={active.settings}
            onChange={(patch) => chat.dispatch({ type: "settings", id: active.id, settings: patch })}
          />
        )}
        <div className="log" ref={logRef} role="log" aria-label="Messages" aria-busy={busy}>
          {messages.length === 0 ? (
            <div className="empty">
              <h2>{config.title}</h2>
              <p>Ask anything. Enter sends, Shift+Enter adds a line. Conversations stay in this browser.</p>
            </div>
          ) : (
            messages.map((m, i) => (
              <MessageItem
                key={m.id}
                message={m}
                isLastUser={i === lastUserIndex}
                isLastAnswer={i === messages.length - 1 && m.role === "assistant"}
                busy={busy}
                waitS={waitS}
                onRegenerate={chat.regenerate}
                onEdit={(text) => chat.editLast(m.id, text)}
              />
            ))
          )}
        </div>
        <Composer ref={composerRef} busy={busy} blockedReason={blockedReason} onSend={chat.send} onStop={chat.stop} />
      </main>
    </div>
  );
}

import { Fragment, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { AccountBadge, SessionExpiredBanner, SignInPage, useAccount } from "./components/Account";
import { Composer, type DraftCheck } from "./components/Composer";
import { MessageItem } from "./components/MessageItem";
import { SettingsPanel } from "./components/SettingsPanel";
import { Sidebar } from "./components/Sidebar";
import { ModelNote } from "./components/ModelNote";
import { notServedReason, StatusBanner } from "./components/StatusBanner";
import { type Target, tokenScale, useChat } from "./hooks/useChat";
import { useFollowScroll } from "./hooks/useFollowScroll";
import { useMediaQuery } from "./hooks/useMediaQuery";
import { useNow, useReadiness } from "./hooks/useReadiness";
import { useServerHistory } from "./hooks/useServerHistory";
import { type Account, ChatClient, type ModelInfo, type RuntimeConfig } from "./lib/api";
import { estimateTokens, formatTokens, planContext } from "./lib/context";
import type { Problem } from "./lib/errors";
import { type ConversationSettings, type Message, sendableMessages } from "./lib/store";

/** Phones: no Shift key on the on-screen keyboard, so Enter must be able to add a line. */
const PHONE = "(max-width: 760px), (pointer: coarse)";

export function App({ config }: { config: RuntimeConfig }) {
  const client = useMemo(() => new ChatClient(config), [config]);
  const { account, sessionLost, signOut, recheck: recheckAccount } = useAccount(client, config.signIn);
  if (account.state === "checking") return null; // a moment; avoids showing the chat to someone signed out
  if (account.state === "signedOut" || account.state === "unknown")
    return (
      <SignInPage
        title={config.title}
        problem={account.state === "unknown" ? account.detail : undefined}
        onRetry={recheckAccount}
      />
    );
  return (
    <Chat
      config={config}
      client={client}
      account={account.state === "signedIn" ? account.account : undefined}
      expired={account.state === "expired"}
      onSessionLost={sessionLost}
      onSignOut={signOut}
    />
  );
}

interface ChatProps {
  config: RuntimeConfig;
  client: ChatClient;
  /** The signed-in person (sign-in on); undefined when sign-in is off or the session ended. */
  account?: Account;
  /** The session ended while the page was open. */
  expired: boolean;
  onSessionLost: () => void;
  onSignOut: () => void;
}

function Chat({ config, client, account, expired, onSessionLost, onSignOut }: ChatProps) {
  const { readiness, notReadySince, recheck } = useReadiness(client);
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [preferredModel, setPreferredModel] = useState("");
  const servedIds = useMemo(() => models.map((m) => m.id), [models]);
  const defaultModel = (servedIds.includes(preferredModel) && preferredModel) || servedIds[0] || "";

  /** A conversation's model while it is served; otherwise the served default (its old model is gone). */
  const targetOf = useCallback(
    (settings: ConversationSettings): Target => {
      const model = servedIds.length === 0 || servedIds.includes(settings.model) ? settings.model || defaultModel : defaultModel;
      return { model, contextTokens: models.find((m) => m.id === model)?.maxModelLen };
    },
    [models, servedIds, defaultModel],
  );
  const newSettings = useCallback(
    (): Partial<ConversationSettings> => ({ systemPrompt: config.defaultSystemPrompt }),
    [config.defaultSystemPrompt],
  );
  const onFailure = useCallback(
    (problem: Problem) => {
      if (problem.signIn) onSessionLost();
      else recheck();
    },
    [onSessionLost, recheck],
  );
  // Read by useChat's save effect, which runs after this render has set it.
  const storeKind = useRef("probing");
  const chat = useChat(client, {
    newSettings,
    targetOf,
    onFailure,
    saveLocally: () => storeKind.current !== "server",
  });
  const { state, active, streamingId } = chat;
  const history = useServerHistory(config, state, chat.dispatch);
  storeKind.current = history.kind;
  const onServer = history.kind === "server";
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [editingId, setEditingId] = useState<string | null>(null);
  const composerRef = useRef<HTMLTextAreaElement>(null);
  const menuRef = useRef<HTMLButtonElement>(null);
  const logRef = useRef<HTMLDivElement>(null);
  const ready = readiness?.state === "ready";
  const isPhone = useMediaQuery(PHONE);

  const now = useNow(notReadySince !== null || chat.coolUntil > Date.now());
  const waitS = Math.max(0, Math.ceil((chat.coolUntil - now) / 1000));
  const elapsedS = notReadySince ? (now - notReadySince) / 1000 : 0;

  useEffect(() => {
    document.title = config.title;
  }, [config.title]);

  // The model list, each time the backend becomes ready (it may have been restarted with another model).
  useEffect(() => {
    if (!ready) return;
    client.models().then(setModels, () =>
      setModels(readiness?.state === "ready" ? readiness.models.map((id) => ({ id })) : []),
    );
  }, [ready, client]); // not `readiness`: a re-poll while ready must not re-fetch the list

  const messages = active?.messages ?? [];
  const followAgain = useFollowScroll(logRef, messages, active?.id);
  const busy = streamingId !== null;

  // After an answer ends (Stop replaced by Send), keep the keyboard in the message box.
  useEffect(() => {
    if (!busy && document.activeElement === document.body) composerRef.current?.focus();
  }, [busy]);

  // Another conversation: whatever was being edited there is not edited here.
  useEffect(() => setEditingId(null), [active?.id]);

  const returnToMenu = useRef(false);
  const closeDrawer = useCallback(() => {
    returnToMenu.current = true;
    setSidebarOpen(false);
  }, []);
  // Back to the menu button once the drawer is closed (the page behind it is inert until then).
  useEffect(() => {
    if (!sidebarOpen && returnToMenu.current) {
      returnToMenu.current = false;
      menuRef.current?.focus();
    }
  }, [sidebarOpen]);

  const newConversation = useCallback(() => {
    chat.newConversation();
    setSidebarOpen(false);
    composerRef.current?.focus();
  }, [chat.newConversation]);

  const editLast = useCallback(() => {
    const last = [...messages].reverse().find((m) => m.role === "user");
    if (last && !busy) setEditingId(last.id);
  }, [messages, busy]);

  // Page-wide shortcuts: Esc stops the answer, Ctrl+Shift+O opens a new conversation (as in ChatGPT).
  useEffect(() => {
    const onKeyDown = (event: KeyboardEvent) => {
      if (event.defaultPrevented) return;
      if (event.key === "Escape" && busy) {
        event.preventDefault();
        chat.stop();
      } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
        event.preventDefault();
        newConversation();
      }
    };
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, [busy, chat.stop, newConversation]);

  const settings = active?.settings;
  const target = settings ? targetOf(settings) : { model: defaultModel, contextTokens: undefined };
  const contextTokens = target.contextTokens;
  const lostModel = settings?.model && servedIds.length > 0 && !servedIds.includes(settings.model) ? settings.model : "";

  // Which of the shown messages still fit the model's context: a line marks where sending starts.
  const sendable = useMemo(() => sendableMessages(messages), [messages]);
  const scale = tokenScale.of(target.model); // learnt from the server's token counts
  const plan = useMemo(
    () => planContext(sendable, settings?.systemPrompt ?? "", contextTokens, settings?.maxTokens ?? 0, scale),
    [sendable, settings?.systemPrompt, settings?.maxTokens, contextTokens, scale],
  );
  const firstSentId = plan.dropped > 0 ? plan.kept[0]?.id : undefined;

  const checkDraft = useCallback(
    (text: string): DraftCheck => {
      const draftTokens = Math.ceil(estimateTokens(text) * scale);
      if (!settings || !contextTokens) return { note: text.trim() ? `≈ ${formatTokens(draftTokens)} tokens` : "", blocked: "" };
      const draft: Message = { id: "draft", role: "user", content: text, status: "complete" };
      const next = planContext(
        text.trim() ? [...sendable, draft] : sendable,
        settings.systemPrompt,
        contextTokens,
        settings.maxTokens,
        scale,
      );
      const note =
        `${text.trim() ? `≈ ${formatTokens(draftTokens)} tokens · ` : ""}` +
        `context ≈ ${formatTokens(next.promptTokens)} of ${formatTokens(contextTokens)}` +
        (next.dropped > 0 ? ` · oldest ${next.dropped} left out` : "");
      const blocked =
        text.trim() && !next.fits
          ? `This message is about ${formatTokens(next.promptTokens)} tokens with the system prompt: the model's context holds ` +
            `${formatTokens(contextTokens)}, answer included. Shorten it or split it.`
          : "";
      return { note, blocked };
    },
    [settings, contextTokens, sendable, scale],
  );

  const blockedReason = waitS > 0 ? `Rate limited: you can send again in ${waitS} s.` : notServedReason(readiness);

  const onSend = useCallback(
    (text: string) => {
      followAgain();
      return chat.send(text);
    },
    [chat.send, followAgain],
  );

  return (
    <div className="app">
      <a className="skip-link" href="#composer-input">
        Skip to message box
      </a>
      <Sidebar
        conversations={state.conversations}
        activeId={state.activeId}
        busyIds={chat.streams}
        open={sidebarOpen}
        onClose={closeDrawer}
        onNew={newConversation}
        onSelect={(id) => {
          chat.dispatch({ type: "select", id });
          setSidebarOpen(false);
        }}
        onRename={(id, title) => chat.dispatch({ type: "rename", id, title })}
        onDelete={chat.deleteConversation}
        footer={
          onServer && (
            <div className="history-footer">
              <p className="store-note">Saved to your account: on every device you sign in on.</p>
              <div className="export-buttons" role="group" aria-label="Export all conversations">
                <span>Export:</span>
                <button type="button" className="ghost small" onClick={() => void history.exportAs("markdown")}>
                  Markdown
                </button>
                <button type="button" className="ghost small" onClick={() => void history.exportAs("json")}>
                  JSON
                </button>
              </div>
            </div>
          )
        }
      />
      {sidebarOpen && <div className="scrim" onClick={closeDrawer} aria-hidden="true" />}
      <main className="main" inert={isPhone && sidebarOpen ? true : undefined}>
        <header className="topbar">
          <button
            type="button"
            ref={menuRef}
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
              value={settings?.model || defaultModel}
              onChange={(e) =>
                active
                  ? chat.dispatch({ type: "settings", id: active.id, settings: { model: e.target.value } })
                  : setPreferredModel(e.target.value)
              }
              disabled={models.length === 0}
            >
              {models.length === 0 && <option value="">{ready ? "default model" : "no models yet"}</option>}
              {lostModel && <option value={lostModel}>{lostModel} (not served)</option>}
              {servedIds.map((m) => (
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
          {account && <AccountBadge account={account} onSignOut={onSignOut} />}
        </header>
        {expired && <SessionExpiredBanner />}
        <StatusBanner readiness={readiness} elapsedS={elapsedS} onRecheck={recheck} />
        {config.modelNote && <ModelNote text={config.modelNote} />}
        {chat.saveFailed && (
          <div className="banner warn" role="status">
            This browser refused to save the conversations (storage full or private mode); they will be lost on reload.
          </div>
        )}
        {history.importable.length > 0 && (
          <div className="banner info import-offer" role="status">
            <span>
              This browser holds {history.importable.length} conversation{history.importable.length > 1 ? "s" : ""} from
              before you signed in. Add {history.importable.length > 1 ? "them" : "it"} to your account?
            </span>{" "}
            <button type="button" onClick={() => void history.importLocal()}>
              Import
            </button>{" "}
            <button type="button" className="ghost" onClick={history.declineImport}>
              Not now
            </button>
          </div>
        )}
        {history.problem && (
          <div className="banner warn history-problem" role="alert">
            Could not save the conversations to your account: {history.problem}
          </div>
        )}
        {lostModel && (
          <div className="banner warn model-fallback" role="status">
            This conversation used <strong>{lostModel}</strong>, which the server no longer serves. New messages go to{" "}
            <strong>{target.model}</strong>; pick another model in the menu to change that.
          </div>
        )}
        {settingsOpen && active && settings && (
          <SettingsPanel
            settings={settings}
            contextTokens={contextTokens}
            savedPrompts={config.savedPrompts}
            onChange={(patch) => chat.dispatch({ type: "settings", id: active.id, settings: patch })}
          />
        )}
        <div className="log" ref={logRef} role="log" aria-label="Messages" aria-busy={busy}>
          {messages.length === 0 ? (
            <div className="empty">
              <h2>{config.title}</h2>
              <p>
                Ask anything. {isPhone ? "Enter adds a line; tap Send to send." : "Enter sends, Shift+Enter adds a line."}{" "}
                {onServer ? "Conversations are saved to your account." : "Conversations stay in this browser."}
              </p>
            </div>
          ) : (
            messages.map((m, i) => (
              <Fragment key={m.id}>
                {m.id === firstSentId && (
                  <div className="context-divider" role="note">
                    <span>
                      The {plan.dropped} message{plan.dropped > 1 ? "s" : ""} above {plan.dropped > 1 ? "are" : "is"} no
                      longer sent to the model: the conversation is longer than its context (
                      {formatTokens(contextTokens ?? 0)} tokens).
                    </span>
                  </div>
                )}
                <MessageItem
                  message={m}
                  isLastAnswer={i === messages.length - 1 && m.role === "assistant"}
                  busy={busy}
                  waitS={waitS}
                  editing={editingId === m.id}
                  onStartEdit={setEditingId}
                  onRegenerate={chat.regenerate}
                  onEdit={chat.editMessage}
                  onDelete={chat.deleteMessage}
                  onSelectVariant={chat.selectVariant}
                />
              </Fragment>
            ))
          )}
        </div>
        <Composer
          ref={composerRef}
          busy={busy}
          blockedReason={blockedReason}
          enterSends={!isPhone}
          checkDraft={checkDraft}
          onSend={onSend}
          onStop={chat.stop}
          onEditLast={editLast}
        />
      </main>
    </div>
  );
}

// The conversation store plus the answers that are streaming (one per conversation at most):
// send, stop, regenerate (as a new variant), edit any question, delete any message.

import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { type ChatClient, isAbort } from "../lib/api";
import {
  type ContextPlan,
  contextOverflowTokens,
  formatTokens,
  MIN_LEARNING_TOKENS,
  planContext,
  TokenScale,
} from "../lib/context";
import { ApiError, describeError, type Problem } from "../lib/errors";
import {
  type Action,
  type Conversation,
  type ConversationSettings,
  loadState,
  type Message,
  newId,
  reduce,
  requestMessages,
  saveState,
  sendableMessages,
} from "../lib/store";

const FLUSH_MS = 50; // batch streamed text: one render per 50 ms, not one per token
/** Re-plans after the server said the prompt is longer than the context (each with a learnt scale). */
const MAX_CONTEXT_RETRIES = 2;

/** What the estimate learnt about each model's tokenizer, kept across reloads. */
export const tokenScale = new TokenScale(typeof window === "undefined" ? undefined : window.localStorage);

/** What a conversation's requests go to: its model, or the served fallback, and that model's context. */
export interface Target {
  model: string;
  contextTokens?: number;
}

interface Options {
  /** Settings of a new conversation (team defaults from config.json). */
  newSettings: () => Partial<ConversationSettings>;
  /** The model and context a conversation's next request uses (falls back when its model is gone). */
  targetOf: (settings: ConversationSettings) => Target;
  /** false while the conversations live on the server (a signed-in person): localStorage is left alone. */
  saveLocally?: () => boolean;
  /** Hears every failed answer (the page re-checks the backend at once instead of waiting). */
  onFailure?: (problem: Problem) => void;
}

export function tooLongProblem(tokens: number, contextTokens: number): Problem {
  return {
    title: "This message is too long for the model",
    action:
      `It needs about ${formatTokens(tokens)} tokens; the model's context holds ` +
      `${formatTokens(contextTokens)} tokens, answer included. Shorten it or split it (Edit), then send again.`,
    retryable: false,
  };
}

export function useChat(client: ChatClient, options: Options) {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [state, dispatch] = useReducer(reduce, undefined, () => loadState(window.localStorage));
  const [saveFailed, setSaveFailed] = useState(false);
  /** conversation id -> id of the answer streaming into it */
  const [streams, setStreams] = useState<Record<string, string>>({});
  /** Until when (ms epoch) sending waits, after a 429 / rate_limited with a Retry-After. */
  const [coolUntil, setCoolUntil] = useState(0);
  const controllers = useRef(new Map<string, AbortController>());
  const stateRef = useRef(state);
  stateRef.current = state;

  useEffect(() => {
    if (optionsRef.current.saveLocally?.() === false) return;
    setSaveFailed(!saveState(window.localStorage, state));
  }, [state]);

  // There is always a conversation to type into (first visit, or after deleting the last one).
  useEffect(() => {
    if (state.conversations.length === 0)
      dispatch({ type: "create", id: newId(), now: Date.now(), settings: optionsRef.current.newSettings() });
  }, [state.conversations.length]);

  const active = state.conversations.find((c) => c.id === state.activeId) ?? null;

  /** Stream an answer to `history` into `target`: a new message, or a new variant of an existing answer. */
  const run = useCallback(
    async (conversation: Conversation, history: Message[], variantOf?: string) => {
      const conversationId = conversation.id;
      if (controllers.current.has(conversationId)) return;
      const messageId = variantOf ?? newId();
      if (variantOf) dispatch({ type: "newVariant", id: conversationId, messageId });
      else
        dispatch({
          type: "append",
          id: conversationId,
          message: { id: messageId, role: "assistant", content: "", status: "streaming" },
          now: Date.now(),
        });

      const { settings } = conversation;
      const { model, contextTokens } = optionsRef.current.targetOf(settings);
      const sendable = sendableMessages(history);
      const planFor = (scale: number) =>
        planContext(sendable, settings.systemPrompt, contextTokens, settings.maxTokens, scale);
      const tooLong = (plan: ContextPlan) => {
        dispatch({
          type: "patchMessage",
          id: conversationId,
          messageId,
          patch: { status: "failed", problem: tooLongProblem(plan.promptTokens, contextTokens ?? 0) },
        });
      };
      let plan = planFor(tokenScale.of(model));
      if (!plan.fits) return tooLong(plan);

      const controller = new AbortController();
      controllers.current.set(conversationId, controller);
      setStreams((s) => ({ ...s, [conversationId]: messageId }));

      let pending = "";
      let flushTimer: ReturnType<typeof setTimeout> | undefined;
      let received = false;
      const flush = () => {
        flushTimer = undefined;
        if (!pending) return;
        dispatch({ type: "appendText", id: conversationId, messageId, text: pending });
        pending = "";
      };
      const finish = (patch: Partial<Message>) => {
        clearTimeout(flushTimer);
        flush();
        dispatch({
          type: "patchMessage",
          id: conversationId,
          messageId,
          patch: { droppedForContext: plan.dropped || undefined, ...patch },
        });
      };
      const fail = (problem: Problem) => {
        if (problem.retryAfterS) setCoolUntil(Date.now() + problem.retryAfterS * 1000);
        optionsRef.current.onFailure?.(problem);
        finish({ status: received ? "interrupted" : "failed", problem });
      };
      /** The server counted more prompt tokens than the estimate: learn its count and plan again (true: try again). */
      const replanAfter = (error: ApiError, attempt: number): boolean => {
        const counted = contextOverflowTokens(error.message);
        if (counted === null || received || attempt >= MAX_CONTEXT_RETRIES) return false;
        const actual = counted || plan.promptTokens * 2; // it counted characters only: be twice as careful
        plan = planFor(tokenScale.learn(model, plan.promptTokens, actual, 1.2));
        return true;
      };

      try {
        for (let attempt = 0; ; attempt++) {
          if (!plan.fits) {
            finish({});
            return tooLong(plan);
          }
          try {
            const events = client.chat(
              {
                model: model || undefined,
                messages: requestMessages(settings.systemPrompt, plan.kept),
                temperature: settings.temperature,
                max_tokens: plan.maxTokens,
              },
              { signal: controller.signal },
            );
            for await (const event of events) {
              if (event.type === "delta") {
                received = true;
                pending += event.content;
                flushTimer ??= setTimeout(flush, FLUSH_MS);
              } else if (event.type === "done") {
                const { timings, usage, finish_reason } = event.data;
                if (usage?.prompt_tokens && plan.promptTokens >= MIN_LEARNING_TOKENS)
                  tokenScale.learn(model, plan.promptTokens, usage.prompt_tokens);
                finish({
                  status: finish_reason === "abort" ? "stopped" : "complete",
                  stats: {
                    ttftMs: timings?.ttft_ms,
                    tokensPerS: timings?.tokens_per_s,
                    completionTokens: usage?.completion_tokens,
                    finishReason: finish_reason,
                  },
                });
              } else {
                const { code, message, retry_after_s } = event.data;
                throw new ApiError("event", message, undefined, code, retry_after_s);
              }
            }
            return;
          } catch (error) {
            if (error instanceof ApiError && replanAfter(error, attempt)) continue;
            throw error;
          }
        }
      } catch (error) {
        if (isAbort(error) && controller.signal.aborted) finish({ status: "stopped" });
        else fail(describeError(error));
      } finally {
        clearTimeout(flushTimer);
        if (controllers.current.get(conversationId) === controller) controllers.current.delete(conversationId);
        setStreams((s) => {
          const { [conversationId]: _, ...rest } = s;
          return rest;
        });
      }
    },
    [client],
  );

  const current = () => stateRef.current.conversations.find((c) => c.id === stateRef.current.activeId) ?? null;
  const isStreaming = (conversationId: string) => controllers.current.has(conversationId);

  const send = useCallback(
    (text: string) => {
      const content = text.trim();
      let conversation = current();
      if (!content || (conversation && isStreaming(conversation.id))) return false;
      if (!conversation) {
        const create: Action = { type: "create", id: newId(), now: Date.now(), settings: optionsRef.current.newSettings() };
        dispatch(create);
        conversation = reduce(stateRef.current, create).conversations[0];
      }
      const message: Message = { id: newId(), role: "user", content, status: "complete" };
      dispatch({ type: "append", id: conversation.id, message, now: Date.now() });
      void run(conversation, [...conversation.messages, message]);
      return true;
    },
    [run],
  );

  /** Answer the last question again; an existing answer is kept as a variant (‹n/m›). */
  const regenerate = useCallback(() => {
    const conversation = current();
    if (!conversation || isStreaming(conversation.id)) return;
    const last = conversation.messages.at(-1);
    if (last?.role === "assistant") {
      const history = conversation.messages.slice(0, -1);
      if (history.at(-1)?.role === "user") void run(conversation, history, last.id);
    } else if (last?.role === "user") void run(conversation, conversation.messages);
  }, [run]);

  /** Replace a question of the conversation: everything after it goes, and it is sent again. */
  const editMessage = useCallback(
    (messageId: string, text: string) => {
      const conversation = current();
      const content = text.trim();
      if (!conversation || !content || isStreaming(conversation.id)) return;
      const index = conversation.messages.findIndex((m) => m.id === messageId);
      if (index === -1) return;
      const message: Message = { id: newId(), role: "user", content, status: "complete" };
      dispatch({ type: "truncateFrom", id: conversation.id, messageId });
      dispatch({ type: "append", id: conversation.id, message, now: Date.now() });
      void run(conversation, [...conversation.messages.slice(0, index), message]);
    },
    [run],
  );

  const deleteMessage = useCallback((messageId: string) => {
    const conversation = current();
    if (conversation && !isStreaming(conversation.id))
      dispatch({ type: "deleteMessage", id: conversation.id, messageId });
  }, []);

  const selectVariant = useCallback((messageId: string, index: number) => {
    const conversation = current();
    if (conversation) dispatch({ type: "selectVariant", id: conversation.id, messageId, index });
  }, []);

  /** Stop the answer of the shown conversation (only that one: others keep streaming). */
  const stop = useCallback(() => {
    const id = stateRef.current.activeId;
    if (id) controllers.current.get(id)?.abort();
  }, []);

  /** Delete a conversation; an answer still streaming into it is stopped first (vLLM stops too). */
  const deleteConversation = useCallback((id: string) => {
    controllers.current.get(id)?.abort();
    dispatch({ type: "delete", id });
  }, []);

  /** Show an empty conversation: the newest one already empty, else a new one. */
  const newConversation = useCallback(() => {
    const empty = stateRef.current.conversations.find((c) => c.messages.length === 0);
    if (empty) dispatch({ type: "select", id: empty.id });
    else dispatch({ type: "create", id: newId(), now: Date.now(), settings: optionsRef.current.newSettings() });
  }, []);

  const apply = useCallback((action: Action) => dispatch(action), []);

  return {
    state,
    active,
    streams,
    /** The answer streaming into the shown conversation, or null. */
    streamingId: (active && streams[active.id]) || null,
    send,
    stop,
    regenerate,
    editMessage,
    deleteMessage,
    selectVariant,
    deleteConversation,
    newConversation,
    dispatch: apply,
    coolUntil,
    saveFailed,
  };
}

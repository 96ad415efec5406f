// The conversation store plus the one answer that may be streaming: send, stop, regenerate, edit.

import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { type ChatClient, isAbort } from "../lib/api";
import { ApiError, describeError, type Problem } from "../lib/errors";
import {
  type Action,
  type Conversation,
  loadState,
  type Message,
  newId,
  reduce,
  saveState,
  toRequestMessages,
} from "../lib/store";

const FLUSH_MS = 50; // batch streamed text: one render per 50 ms, not one per token

export interface Streaming {
  conversationId: string;
  messageId: string;
}

/** `onFailure` hears every failed answer (the page re-checks the backend at once instead of waiting). */
export function useChat(client: ChatClient, defaultModel: string, onFailure?: (problem: Problem) => void) {
  const onFailureRef = useRef(onFailure);
  onFailureRef.current = onFailure;
  const [state, dispatch] = useReducer(reduce, undefined, () => loadState(window.localStorage));
  const [saveFailed, setSaveFailed] = useState(false);
  const [streaming, setStreaming] = useState<Streaming | null>(null);
  /** Until when (ms epoch) sending waits, after a 429 / rate_limited with a Retry-After. */
  const [coolUntil, setCoolUntil] = useState(0);
  const abortRef = useRef<AbortController | null>(null);
  const stateRef = useRef(state);
  stateRef.current = state;

  useEffect(() => {
    setSaveFailed(!saveState(window.localStorage, state));
  }, [state]);

  // There is always a conversation to type into (first visit, or after deleting the last one).
  useEffect(() => {
    if (state.conversations.length === 0)
      dispatch({ type: "create", id: newId(), now: Date.now(), settings: { model: defaultModel } });
  }, [state.conversations.length, defaultModel]);

  const active = state.conversations.find((c) => c.id === state.activeId) ?? null;

  const run = useCallback(
    async (conversation: Conversation, history: Message[]) => {
      const messageId = newId();
      const conversationId = conversation.id;
      dispatch({
        type: "append",
        id: conversationId,
        message: { id: messageId, role: "assistant", content: "", status: "streaming" },
        now: Date.now(),
      });
      const controller = new AbortController();
      abortRef.current = controller;
      setStreaming({ conversationId, messageId });

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
        dispatch({ type: "patchMessage", id: conversationId, messageId, patch });
      };
      const fail = (problem: Problem) => {
        if (problem.retryAfterS) setCoolUntil(Date.now() + problem.retryAfterS * 1000);
        onFailureRef.current?.(problem);
        finish({ status: received ? "interrupted" : "failed", problem });
      };

      const { settings } = conversation;
      try {
        const events = client.chat(
          {
            model: settings.model || defaultModel || undefined,
            messages: toRequestMessages({ ...conversation, messages: history }),
            temperature: settings.temperature,
            max_tokens: settings.maxTokens,
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
            fail(describeError(new ApiError("event", message, undefined, code, retry_after_s)));
          }
        }
      } catch (error) {
        if (isAbort(error) && controller.signal.aborted) finish({ status: "stopped" });
        else fail(describeError(error));
      } finally {
        clearTimeout(flushTimer);
        abortRef.current = null;
        setStreaming(null);
      }
    },
    [client, defaultModel],
  );

  const current = () => stateRef.current.conversations.find((c) => c.id === stateRef.current.activeId) ?? null;

  const send = useCallback(
    (text: string) => {
      const content = text.trim();
      if (!content || abortRef.current) return false;
      let conversation = current();
      if (!conversation) {
        const create: Action = { type: "create", id: newId(), now: Date.now(), settings: { model: defaultModel } };
        dispatch(create);
        conversation = reduce(stateRef.current, create).conversations[0];
      }
      const message: Message = { id: newId(), role: "user", content, status: "complete" };
      dispatch({ type: "append", id: conversation.id, message, now: Date.now() });
      void run(conversation, [...conversation.messages, message]);
      return true;
    },
    [run, defaultModel],
  );

  /** Answer the last user message again (Regenerate, or Retry after a failure). */
  const regenerate = useCallback(() => {
    const conversation = current();
    if (!conversation || abortRef.current) return;
    const last = conversation.messages.at(-1);
    let history = conversation.messages;
    if (last?.role === "assistant") {
      dispatch({ type: "truncateFrom", id: conversation.id, messageId: last.id });
      history = history.slice(0, -1);
    }
    if (history.at(-1)?.role !== "user") return;
    void run(conversation, history);
  }, [run]);

  /** Replace the last user message (and the answer after it) and send again. */
  const editLast = useCallback(
    (messageId: string, text: string) => {
      const conversation = current();
      const content = text.trim();
      if (!conversation || !content || abortRef.current) return;
      const index = conversation.messages.findIndex((m) => m.id === messageId);
      if (index === -1) return;
      dispatch({ type: "truncateFrom", id: conversation.id, messageId });
      const message: Message = { id: newId(), role: "user", content, status: "complete" };
      dispatch({ type: "append", id: conversation.id, message, now: Date.now() });
      void run(conversation, [...conversation.messages.slice(0, index), message]);
    },
    [run],
  );

  const stop = useCallback(() => abortRef.current?.abort(), []);

  const apply = useCallback((action: Action) => dispatch(action), []);

  return { state, active, streaming, send, stop, regenerate, editLast, dispatch: apply, coolUntil, saveFailed };
}

// Where the conversations live: localStorage until chat-api says this person has server history
// (GET /api/conversations answers 200), then the server: loaded once, saved as they change.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { RuntimeConfig } from "../lib/api";
import { ApiError } from "../lib/errors";
import {
  HistoryClient,
  HistorySync,
  sendUnsaved,
  IMPORT_OFFERED_KEY,
  type ImportResult,
  importableLocal,
  type StoreKind,
} from "../lib/serverHistory";
import type { Action, Conversation, StoreState } from "../lib/store";

export interface ServerHistory {
  /** "probing" until chat-api answered; the page keeps localStorage's conversations meanwhile. */
  kind: StoreKind | "probing";
  /** The browser's own conversations, offered once for import into the account. */
  importable: Conversation[];
  importLocal: () => Promise<ImportResult | null>;
  declineImport: () => void;
  exportAs: (format: "markdown" | "json") => Promise<void>;
  /** The last save or import that failed, in chat-api's words; null once one succeeds. */
  problem: string | null;
}

export function useServerHistory(
  config: RuntimeConfig,
  state: StoreState,
  dispatch: (action: Action) => void,
  storage: Storage = window.localStorage,
): ServerHistory {
  const client = useMemo(() => new HistoryClient(config), [config]);
  const [kind, setKind] = useState<StoreKind | "probing">("probing");
  const [importable, setImportable] = useState<Conversation[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const sync = useMemo(
    () => new HistorySync(client, (error) => setProblem(error ? describe(error) : null), undefined, storage),
    [client, storage],
  );
  const primeNext = useRef(false);

  /** Replace the shown conversations with the server's; the next state is what the server holds. */
  const show = useCallback(
    (conversations: Conversation[]) => {
      primeNext.current = true;
      dispatch({ type: "load", conversations });
    },
    [dispatch],
  );
  const load = useCallback(async () => show(await client.loadAll()), [client, show]);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      const detected = await client.detect();
      if (cancelled) return;
      if (detected === "local") return setKind("local");
      let conversations: Conversation[];
      try {
        // What an earlier page could not save (its session ended mid-answer, say) goes first.
        await sendUnsaved(client, storage);
        conversations = await client.loadAll();
      } catch (error) {
        // Present but not readable now: stay on localStorage rather than show an empty history.
        if (!cancelled) {
          setProblem(describe(error));
          setKind("local");
        }
        return;
      }
      if (cancelled) return;
      // One render: the store is "server" from the first render that shows the server's conversations,
      // so they are never written to this browser's localStorage.
      setKind("server");
      setImportable(importableLocal(storage));
      show(conversations);
    })();
    return () => {
      cancelled = true;
      sync.dispose();
    };
  }, [client, show, storage, sync]);

  useEffect(() => {
    if (kind !== "server") return;
    if (primeNext.current) {
      primeNext.current = false;
      sync.prime(state);
    } else sync.schedule(state);
  }, [kind, state, sync]);

  // Closing the tab within the save delay: send what is pending.
  useEffect(() => {
    if (kind !== "server") return;
    const flush = () => void sync.flush();
    window.addEventListener("pagehide", flush);
    return () => window.removeEventListener("pagehide", flush);
  }, [kind, sync]);

  const importLocal = useCallback(async () => {
    try {
      await sync.flush();
      const result = await client.importLocal(importable);
      storage.setItem(IMPORT_OFFERED_KEY, new Date().toISOString());
      setImportable([]);
      await load();
      setProblem(null);
      return result;
    } catch (error) {
      setProblem(describe(error));
      return null;
    }
  }, [client, importable, load, storage, sync]);

  const declineImport = useCallback(() => {
    storage.setItem(IMPORT_OFFERED_KEY, new Date().toISOString());
    setImportable([]);
  }, [storage]);

  const exportAs = useCallback(
    async (format: "markdown" | "json") => {
      try {
        await sync.flush();
        const { blob, filename } = await client.exportFile(format);
        const url = URL.createObjectURL(blob);
        const link = document.createElement("a");
        link.href = url;
        link.download = filename;
        link.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      } catch (error) {
        setProblem(describe(error));
      }
    },
    [client, sync],
  );

  return { kind, importable, importLocal, declineImport, exportAs, problem };
}

function describe(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

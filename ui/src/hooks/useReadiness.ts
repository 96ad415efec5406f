import { useCallback, useEffect, useRef, useState } from "react";
import type { ChatClient, Readiness } from "../lib/api";

const POLL_NOT_READY_MS = 2000;
const POLL_READY_MS = 15000;

export interface ReadinessState {
  readiness: Readiness | null; // null: first check still running
  /** When the current not-ready spell began (ms epoch), for "loading for 42 s". */
  notReadySince: number | null;
  recheck: () => void;
}

/** Polls chat-api's /readyz: often while it is not ready, rarely once it is. */
export function useReadiness(client: ChatClient): ReadinessState {
  const [readiness, setReadiness] = useState<Readiness | null>(null);
  const [notReadySince, setNotReadySince] = useState<number | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const generation = useRef(0);

  const check = useCallback(async () => {
    clearTimeout(timer.current);
    const mine = ++generation.current;
    const result = await client.readiness();
    if (mine !== generation.current) return; // a newer check superseded this one
    setReadiness(result);
    setNotReadySince((since) => (result.state === "ready" ? null : (since ?? Date.now())));
    timer.current = setTimeout(check, result.state === "ready" ? POLL_READY_MS : POLL_NOT_READY_MS);
  }, [client]);

  useEffect(() => {
    void check();
    return () => {
      generation.current++;
      clearTimeout(timer.current);
    };
  }, [check]);

  return { readiness, notReadySince, recheck: () => void check() };
}

/** Re-renders every second while `active`, for countdowns and elapsed times. */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, [active]);
  return now;
}

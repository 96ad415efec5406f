import { type RefObject, useCallback, useEffect, useLayoutEffect, useRef } from "react";

/** How close to the bottom still counts as "at the bottom" (px). */
const NEAR_BOTTOM_PX = 40;

/**
 * Keeps a scrolling log at its bottom while new content arrives, unless the reader scrolled up.
 *
 * Whether to follow is decided from the reader's own scrolling, before new content is added: measuring
 * after an update (as this page once did) stopped following whenever one update was taller than the
 * threshold (a long error, a fast answer), leaving the new content below the fold.
 */
export function useFollowScroll(ref: RefObject<HTMLElement | null>, content: unknown, resetKey: unknown) {
  const follow = useRef(true);
  const lastTop = useRef(0);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const onScroll = () => {
      if (el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX) follow.current = true;
      // Only an upward move is the reader's: content growing below never moves scrollTop up.
      else if (el.scrollTop < lastTop.current - 2) follow.current = false;
      lastTop.current = el.scrollTop;
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, [ref]);

  // Another conversation opens at its end.
  useLayoutEffect(() => {
    follow.current = true;
  }, [resetKey]);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || !follow.current) return;
    el.scrollTop = el.scrollHeight;
    lastTop.current = el.scrollTop;
  }, [ref, content, resetKey]);

  /** Follow again from now on (the reader sent a message). */
  return useCallback(() => {
    follow.current = true;
  }, []);
}

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
    // The reader's own upward moves stop following at once, before the next update can scroll.
    const stop = () => {
      follow.current = false;
    };
    const onWheel = (event: WheelEvent) => {
      if (event.deltaY < 0) stop();
    };
    const onKey = (event: KeyboardEvent) => {
      if (["PageUp", "ArrowUp", "Home"].includes(event.key)) stop();
    };
    const onScroll = () => {
      const top = el.scrollTop;
      const nearBottom = el.scrollHeight - top - el.clientHeight < NEAR_BOTTOM_PX;
      // Back down at the end: follow again. Moving up elsewhere (the scroll bar): stop. Content that
      // shrank (a deleted message) moves scrollTop up too, but leaves it at the bottom.
      if (nearBottom && top >= lastTop.current - 2) follow.current = true;
      else if (!nearBottom && top < lastTop.current - 2) follow.current = false;
      lastTop.current = top;
    };
    el.addEventListener("wheel", onWheel, { passive: true });
    el.addEventListener("touchmove", stop, { passive: true });
    el.addEventListener("keydown", onKey);
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => {
      el.removeEventListener("wheel", onWheel);
      el.removeEventListener("touchmove", stop);
      el.removeEventListener("keydown", onKey);
      el.removeEventListener("scroll", onScroll);
    };
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

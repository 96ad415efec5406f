// Sign-in for people (chat-api's OpenID Connect, /auth/*): the sign-in page, who is signed in with a
// Sign out, and the banner when the session ends while the page is open. Only when config.signIn.

import { useCallback, useEffect, useState } from "react";
import type { Account, ChatClient } from "../lib/api";

/** "off": sign-in not configured; "checking": asking /auth/me; "signedIn"; "signedOut": no session at load;
 * "expired": the session ended while the page was open (the conversation stays on screen). */
export type AccountState =
  | { state: "off" | "checking" | "signedOut" }
  | { state: "signedIn"; account: Account }
  | { state: "expired"; account?: Account }
  | { state: "unknown"; detail: string };

export function useAccount(client: ChatClient, enabled: boolean) {
  const [account, setAccount] = useState<AccountState>({ state: enabled ? "checking" : "off" });

  const check = useCallback(
    (onLoad: boolean) => {
      if (!enabled) return;
      client.me().then(
        (me) =>
          setAccount((prev) =>
            me
              ? { state: "signedIn", account: me }
              : onLoad || prev.state === "checking"
                ? { state: "signedOut" }
                : { state: "expired", account: prev.state === "signedIn" ? prev.account : undefined },
          ),
        (error: unknown) =>
          setAccount((prev) =>
            prev.state === "signedIn" ? prev : { state: "unknown", detail: error instanceof Error ? error.message : String(error) },
          ),
      );
    },
    [client, enabled],
  );

  useEffect(() => check(true), [check]);

  // At the session's end, ask again: the banner then says so before the next message fails.
  const expiresAt = account.state === "signedIn" ? account.account.expiresAt : 0;
  useEffect(() => {
    if (!expiresAt) return;
    const ms = Math.max(0, expiresAt * 1000 - Date.now()) + 1000;
    const timer = setTimeout(() => check(false), Math.min(ms, 2 ** 31 - 1));
    return () => clearTimeout(timer);
  }, [expiresAt, check]);

  /** A request was refused for want of a session (401 signin_required/session_expired). */
  const sessionLost = useCallback(
    () => setAccount((prev) => (prev.state === "signedIn" ? { state: "expired", account: prev.account } : prev)),
    [],
  );

  const signOut = useCallback(async () => {
    const next = await client.signOut().catch(() => "/");
    window.location.assign(next);
  }, [client]);

  return { account, sessionLost, signOut, recheck: () => check(true) };
}

/** The page shown instead of the chat when nobody is signed in. */
export function SignInPage({ title, problem, onRetry }: { title: string; problem?: string; onRetry?: () => void }) {
  return (
    <main className="signin-page">
      <div className="signin-card">
        <h1>{title}</h1>
        {problem ? (
          <>
            <p role="alert">
              Can't tell whether you are signed in: the chat server did not answer ({problem}).
            </p>
            <button type="button" onClick={onRetry}>
              Try again
            </button>
          </>
        ) : (
          <>
            <p>Sign in with your organisation's account to use this chat.</p>
            <a className="button signin-button" href="/auth/login">
              Sign in
            </a>
          </>
        )}
      </div>
    </main>
  );
}

/** Who is signed in, and Sign out (in the top bar). */
export function AccountBadge({ account, onSignOut }: { account: Account; onSignOut: () => void }) {
  const label = account.name || account.email;
  return (
    <div className="account" title={account.email}>
      <span className="account-name">{label}</span>
      <button type="button" className="ghost small signout" onClick={onSignOut}>
        Sign out
      </button>
    </div>
  );
}

/** The session ended while the page was open: say so, keep everything on screen, offer sign-in. */
export function SessionExpiredBanner() {
  return (
    <div className="banner warn session-expired" role="alert">
      <strong>Your sign-in has expired.</strong> Messages can't be sent until you sign in again. This conversation, and
      any partial answer, stay in this browser.{" "}
      <a className="signin-again" href="/auth/login">
        Sign in again
      </a>
    </div>
  );
}

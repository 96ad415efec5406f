import type { Problem } from "../lib/errors";

interface Props {
  problem: Problem;
  /** Seconds still to wait (rate limit), 0 when none. */
  waitS: number;
  onRetry?: () => void;
  retryDisabled?: boolean;
}

/** What went wrong, what to do, and a Retry when retrying can help. */
export function ProblemBox({ problem, waitS, onRetry, retryDisabled }: Props) {
  return (
    <div className="problem" role="alert">
      <strong>{problem.title}.</strong> <span>{problem.action}</span>
      {problem.detail && <div className="problem-detail">Server said: {problem.detail}</div>}
      {problem.signIn && (
        <div className="problem-actions">
          <a className="button signin-again" href="/auth/login">
            Sign in again
          </a>
        </div>
      )}
      {problem.retryable && onRetry && (
        <div className="problem-actions">
          <button type="button" onClick={onRetry} disabled={retryDisabled || waitS > 0}>
            {waitS > 0 ? `Retry in ${waitS} s` : "Retry"}
          </button>
        </div>
      )}
    </div>
  );
}

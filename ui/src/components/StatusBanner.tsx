import type { Readiness } from "../lib/api";
import { formatElapsed } from "../lib/format";

interface Props {
  readiness: Readiness | null;
  elapsedS: number;
  onRecheck: () => void;
}

/** The backend's state, when it is not simply ready: never a blank page or a silent hang. */
export function StatusBanner({ readiness, elapsedS, onRecheck }: Props) {
  if (readiness === null)
    return (
      <div className="banner info" role="status">
        Connecting to the chat server…
      </div>
    );
  if (readiness.state === "ready") return null;
  if (readiness.state === "loading")
    return (
      <div className="banner info" role="status" data-state="loading">
        <div>
          <strong>The model is loading</strong> ({formatElapsed(elapsedS)} so far). Large models take a few
          minutes; this page checks every 2 s and lets you send as soon as it is ready.
        </div>
        <div className="progress" role="progressbar" aria-label="Model loading" aria-valuetext={`${Math.floor(elapsedS)} seconds`}>
          <span />
        </div>
        <div className="banner-detail">Server said: {readiness.detail}</div>
      </div>
    );
  const unreachable = readiness.state === "unreachable";
  return (
    <div className="banner error" role="alert" data-state={readiness.state}>
      <div>
        <strong>{unreachable ? "Can't reach the chat server" : "The model server is unavailable"}</strong> (for{" "}
        {formatElapsed(elapsedS)}).{" "}
        {unreachable
          ? "Check your connection; if it is fine, the service is down or restarting."
          : "chat-api answers but cannot reach the model; whoever runs the service should check the model server."}{" "}
        Retrying every 2 s.
      </div>
      <div className="banner-actions">
        <button type="button" className="small" onClick={onRecheck}>
          Check now
        </button>
      </div>
      <div className="banner-detail">{readiness.detail}</div>
    </div>
  );
}

import type { Readiness } from "../lib/api";
import { formatElapsed } from "../lib/format";

interface Props {
  readiness: Readiness | null;
  elapsedS: number;
  /** The model answered at some point since this page opened. */
  wasReady: boolean;
  onRecheck: () => void;
}

const STAGES: Record<string, string> = {
  pulling: "pulling the vLLM image",
  downloading: "downloading the model weights",
  loading: "loading the model",
};

/** The backend's state, when it is not simply ready: never a blank page or a silent hang. */
export function StatusBanner({ readiness, elapsedS, wasReady, onRecheck }: Props) {
  if (readiness === null)
    return (
      <div className="banner info" role="status">
        Connecting to the chat server…
      </div>
    );
  if (readiness.state === "ready") return null;
  const elapsed = formatElapsed(elapsedS);
  const progress = (
    <div className="progress" role="progressbar" aria-label="Model starting" aria-valuetext={`${Math.floor(elapsedS)} seconds`}>
      <span />
    </div>
  );
  if (readiness.state === "loading")
    return (
      <div className="banner info" role="status" data-state="loading">
        <div>
          <strong>The model is loading</strong> ({elapsed} so far). The model server is up and loading the model;
          this page checks every 2 s and lets you send as soon as it is ready.
        </div>
        {progress}
        <div className="banner-detail">Server said: {readiness.detail}</div>
      </div>
    );
  // vLLM opens its port only once the model is loaded, so "not answering" is what a cold start
  // looks like from chat-api; unless this page has already seen it ready, it is most likely starting.
  if (readiness.state === "starting" || (readiness.state === "unavailable" && !wasReady))
    return (
      <div className="banner info" role="status" data-state="starting">
        <div>
          <strong>The model server is starting</strong> ({elapsed} so far
          {readiness.state === "starting" && readiness.stage ? `: ${STAGES[readiness.stage] ?? readiness.stage}` : ""}).
          A cold start takes about 5 to 20 minutes (image, weights, loading); chat-api is up and this page lets you
          send the moment the model answers. If it takes much longer, whoever runs the service should check the
          vLLM pod.
        </div>
        {progress}
        <div className="banner-detail">Server said: {readiness.detail}</div>
      </div>
    );
  if (readiness.state === "wrongModel")
    return (
      <div className="banner error" role="alert" data-state="wrong-model">
        <div>
          <strong>The model server serves a different model than the chat server expects</strong> (for {elapsed}).
          This will not fix itself: whoever runs the service should align chat-api's model setting with what vLLM
          serves.
        </div>
        <div className="banner-actions">
          <button type="button" className="small" onClick={onRecheck}>
            Check now
          </button>
        </div>
        <div className="banner-detail">Server said: {readiness.detail}</div>
      </div>
    );
  const unreachable = readiness.state === "unreachable";
  return (
    <div className="banner error" role="alert" data-state={readiness.state}>
      <div>
        <strong>{unreachable ? "Can't reach the chat server" : "The model server stopped answering"}</strong> (for{" "}
        {elapsed}).{" "}
        {unreachable
          ? "Check your connection; if it is fine, the service is down or restarting."
          : "It answered earlier in this page, so it is down or restarting; whoever runs the service should check the model server."}{" "}
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

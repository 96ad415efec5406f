import type { PodStage, Readiness } from "../lib/api";
import { formatElapsed } from "../lib/format";

interface Props {
  readiness: Readiness | null;
  elapsedS: number;
  onRecheck: () => void;
}

/** The vLLM pod's stage as chat-api reports it (services/chat-api/chat_api/vllm_pods.py). */
const STAGES: Record<string, string> = {
  scheduling: "waiting for a node with a free GPU",
  pulling: "pulling the vLLM image",
  downloading: "downloading the model weights",
  initializing: "preparing the model server pod",
  loading: "loading the model (weights, compilation, warm-up)",
  crashloop: "crash-looping",
  download_failed: "the model download keeps failing",
  image_pull_failed: "the vLLM image cannot be pulled",
  config_error: "the pod cannot start its container (configuration)",
  failed: "the pod failed",
  terminating: "the pod is shutting down",
  no_pod: "no model server pod is running",
  ready: "its pod is ready, but the chat server cannot reach it",
};

/** "downloading the model weights", with restarts and the last exit where chat-api reports them. */
export function stageText(stage: PodStage): string {
  if (!stage.stage) return "";
  const words = STAGES[stage.stage] ?? stage.stage.replace(/_/g, " ");
  const extra = [
    stage.restarts ? `restarted ${stage.restarts} time${stage.restarts === 1 ? "" : "s"}` : "",
    stage.reason ? `last: ${stage.reason}` : "",
  ].filter(Boolean);
  return extra.length ? `${words} (${extra.join("; ")})` : words;
}

/** Why the composer cannot send while no model is served; "" when it can (or chat-api is unreachable:
 * then a send shows its own error, with Retry). */
export function notServedReason(readiness: Readiness | null): string {
  if (readiness === null) return "";
  switch (readiness.state) {
    case "starting": {
      const stage = stageText(readiness);
      return `The model is still starting${stage ? ` (${stage})` : ""}; you can send as soon as it is ready.`;
    }
    case "loading":
      return "The model is still loading; you can send as soon as it is ready.";
    case "wrongModel":
      return "No model is served: the model server serves another model than the chat server is set to use. Sending is blocked until whoever runs the service fixes it.";
    case "unavailable": {
      const stage = stageText(readiness);
      return stage
        ? `No model is served. Model server: ${stage}. Sending is blocked until it is back.`
        : "No model is served: the model server is not answering. Sending is blocked until it is back.";
    }
    default:
      return "";
  }
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
  // chat-api tells a cold start (vLLM never answered since it started, or its pod is on the way up)
  // from an outage; in a cluster it also says which stage the vLLM pod is in.
  if (readiness.state === "starting") {
    const stage = stageText(readiness);
    return (
      <div className="banner info" role="status" data-state="starting" data-stage={readiness.stage ?? ""}>
        <div>
          <strong>{stage ? `Starting: ${stage}…` : "The model server is starting"}</strong> ({elapsed} so far). A cold
          start takes about 5 to 20 minutes (node, image, weights, loading); chat-api is up and this page lets you send
          the moment the model answers. If it takes much longer, whoever runs the service should check the vLLM pod.
        </div>
        {progress}
        <div className="banner-detail">Server said: {readiness.detail}</div>
      </div>
    );
  }
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
  const stage = readiness.state === "unavailable" ? stageText(readiness) : "";
  const title = unreachable
    ? "Can't reach the chat server"
    : stage
      ? `The model server is down: ${stage}`
      : "The model server stopped answering";
  return (
    <div
      className="banner error"
      role="alert"
      data-state={readiness.state}
      data-stage={readiness.state === "unavailable" ? (readiness.stage ?? "") : undefined}
    >
      <div>
        <strong>{title}</strong> (for {elapsed}).{" "}
        {unreachable
          ? "Check your connection; if it is fine, the service is down or restarting."
          : "It will not fix itself by waiting; whoever runs the service should check the model server."}{" "}
        Retrying every 2 s.
      </div>
      <div className="banner-actions">
        <button type="button" className="small" onClick={onRecheck}>
          Check now
        </button>
      </div>
      <div className="banner-detail">{unreachable ? readiness.detail : `Server said: ${readiness.detail}`}</div>
    </div>
  );
}

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { loadConfig } from "./lib/api";
import "./styles.css";

const root = createRoot(document.getElementById("root") as HTMLElement);
// The runtime config decides where chat-api is; one image serves every environment.
loadConfig().then((config) =>
  root.render(
    <StrictMode>
      <App config={config} />
    </StrictMode>,
  ),
);

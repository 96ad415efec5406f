/** The operator's word on the model that answers (config.json's modelNote), e.g. that it is a small demo model. */
export function ModelNote({ text }: { text: string }) {
  return (
    <p className="model-note" role="note" data-testid="model-note">
      {text}
    </p>
  );
}

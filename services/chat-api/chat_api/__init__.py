"""chat-api: the backend between users and vLLM (OpenAI-compatible proxy plus a UI event stream)."""

__version__ = "0.1.0"

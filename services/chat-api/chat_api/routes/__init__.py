"""HTTP and WebSocket routes. Dependencies flow one way: routes -> upstream -> httpx."""

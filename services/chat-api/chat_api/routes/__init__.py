"""HTTP routes. Dependencies flow one way: routes -> session -> upstream -> aiohttp."""

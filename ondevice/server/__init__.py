"""`ondevice serve`: an OpenAI-compatible Chat Completions server whose tool calls are always valid.

Module map: `protocol` (request checks, the card's prompt layout, response objects; no web
dependency), `tool_stream` (follows a tool-call answer as it is generated), `worker` (the one thread
that owns the model; requests queue for it), `responses` (the Responses API over the same checks),
`response_store` (the bounded in-memory store of responses, per API key), `app` (the Starlette app and the uvicorn runner; needs
the `serve` extra).
"""

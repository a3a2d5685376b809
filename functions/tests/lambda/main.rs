//! The Lambda functions fed the `events/` files (what `sam local invoke -e` takes), through the
//! same app their `main` runs, against a real MCP server and a fake OpenAI wire.

mod authorizer;
mod endpoints;
mod helpers;
mod infra;
mod local_invoke;
mod metrics;
mod probe;
mod runtime_api;
mod stream_runtime;

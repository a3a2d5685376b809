//! End-to-end tests over real HTTP: API router + real MCP server + fake OpenAI wire.

mod helpers;

mod budgets;
mod concurrency;
mod daily_budgets;
mod errors;
mod faults;
mod governance;
mod hardening;
mod hitl;
mod invoke;
mod load;
mod observability;
mod stores;
mod streaming;
mod teal;
mod teal_fixtures;
mod traces;

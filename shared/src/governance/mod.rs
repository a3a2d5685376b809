//! Tool governance: which caller may see and call which tool, with which arguments, decided in
//! the process on every call.
//!
//! Owns the Cedar policies that sit beside the agent configs (`policies/*.cedar`, with optional
//! `*.cedarschema` fragments declaring the tool arguments they read), their validation against
//! [`SCHEMA`] at load (errors carry the file and line, like YAML errors), and each decision:
//! principal = the caller (`Caller::"key-id"`, `anonymous` locally), action `call_tool` or
//! `list_tools`, resource = the tool (`Tool::"server/tool"` with `server` and `tool`
//! attributes), context = the agent's name and version and, for a call, its arguments.
//!
//! Without any policy nothing here runs: the agents' allow/deny globs alone decide, as before.
//! With policies, Cedar decides after the globs, and a call no `permit` matches is denied. A
//! policy that cannot be evaluated on a call's arguments denies it when it is a `forbid` (fail
//! closed). It must not call tools or know about HTTP: the loop asks, and sends a denial back
//! to the model as a tool error.
//!
//! The kill switch ([`KillSwitch`]) turns agents off everywhere within a second: see `switch.rs`.

mod gate;
mod policy;
mod switch;

pub use gate::Gate;
pub use policy::{Decision, Denied, Policies, PolicyFile, SCHEMA, ToolRequest};
pub use switch::{Disabled, KillSwitch, REFRESH_EVERY, SwitchGuard, SwitchTarget, note, switch_keys};

#[cfg(test)]
mod tests;

//! Tool sources the agent loop can call besides MCP servers.
//!
//! [`openapi`] turns Teal Agents' remote plugins (OpenAPI documents listed in a catalog) into
//! tools. It is not wired into the loop yet: a `ToolSource` port over it and [`crate::mcp`] is
//! the next step (see ARCHITECTURE.md).

pub mod openapi;

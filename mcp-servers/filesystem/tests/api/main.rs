//! End-to-end tests of the filesystem MCP server over real HTTP: `serve` on 127.0.0.1:0, an
//! rmcp streamable-HTTP client (or raw `reqwest` POSTs) on the other side, tempdirs for the
//! allowed directories and for an "outside" directory that must stay unreachable.

mod confinement;
mod helpers;
mod modes;
mod reference;
mod revisions;
mod security;
mod tools;

//! `spec.agents` and `spec.tasks` of a `kind: Sequential` config (Teal's sequential agents).
//!
//! Tasks are sorted by `task_no` (unique), each names one of `spec.agents`, and each task's
//! `instructions` is a Jinja template compiled now, so a syntax error points at its line.

use std::collections::HashMap;

use crate::config::reader::{Ctx, Field, Fields};
use crate::config::types::{AgentSpec, TaskSpec};

use super::agent::agent_spec;

/// `spec.agents` (at least one, unique names) and `spec.tasks` (at least one).
pub(super) fn agents_and_tasks(
    cx: &mut Ctx,
    spec: &mut Fields<'_>,
    vars: &HashMap<String, String>,
) -> Option<(Vec<AgentSpec>, Vec<TaskSpec>)> {
    let agents = spec.req(cx, "agents").and_then(|list| agents(cx, &list, vars));
    let tasks = spec.req(cx, "tasks").and_then(|list| list.items(cx));
    let (agents, tasks) = (agents?, tasks?);
    let mut out = Vec::new();
    let mut seen: Vec<(i64, usize)> = Vec::new();
    let mut ok = true;
    for item in tasks {
        match item.map(cx).and_then(|f| task(cx, f, &agents, &mut seen)) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    if out.is_empty() && ok {
        spec.missing(cx, "tasks[0]");
        return None;
    }
    out.sort_by_key(|t| t.task_no);
    ok.then_some((agents, out))
}

fn agents(cx: &mut Ctx, list: &Field<'_>, vars: &HashMap<String, String>) -> Option<Vec<AgentSpec>> {
    let items = list.items(cx)?;
    if items.is_empty() {
        list.error(cx, "needs at least one agent");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(mut f) = item.map(cx) else {
            ok = false;
            continue;
        };
        // Every agent of a Sequential config is named: tasks refer to them by name.
        if f.opt("name").is_none() {
            f.missing(cx, "name");
            ok = false;
        }
        let spec = agent_spec(cx, &mut f, vars);
        f.finish(cx);
        match spec {
            Some(s) if out.iter().any(|o: &AgentSpec| o.name == s.name) => {
                item.error(cx, format!("duplicate agent name `{}`", s.name));
                ok = false;
            }
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn task(
    cx: &mut Ctx,
    mut f: Fields<'_>,
    agents: &[AgentSpec],
    seen: &mut Vec<(i64, usize)>,
) -> Option<TaskSpec> {
    let name = f.req(cx, "name").and_then(|n| n.non_empty_string(cx));
    let task_no = f.req(cx, "task_no").and_then(|n| {
        let v = n.integer(cx)?;
        if let Some((_, first)) = seen.iter().find(|(no, _)| *no == v) {
            n.error(cx, format!("duplicate task_no {v} (first at line {first})"));
            return None;
        }
        seen.push((v, n.line()));
        Some(v)
    });
    let description = f.req(cx, "description").and_then(|d| d.string(cx));
    let instructions = f.req(cx, "instructions").and_then(|i| {
        let text = i.string(cx)?;
        match crate::agent::template_env().template_from_str(&text) {
            Ok(_) => Some(text),
            Err(e) => {
                i.error(cx, format!("invalid Jinja template: {e}"));
                None
            }
        }
    });
    let agent = f.req(cx, "agent").and_then(|a| {
        let wanted = a.string(cx)?;
        match agents.iter().position(|s| s.name == wanted) {
            Some(i) => Some(i),
            None => {
                let known: Vec<&str> = agents.iter().map(|s| s.name.as_str()).collect();
                a.error(cx, format!("no agent `{wanted}` in spec.agents (known: {})", known.join(", ")));
                None
            }
        }
    });
    f.finish(cx);
    Some(TaskSpec {
        name: name?,
        task_no: task_no?,
        description: description?,
        instructions: instructions?,
        agent: agent?,
    })
}

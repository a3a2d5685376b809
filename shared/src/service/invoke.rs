//! Running an agent for one request: the flow every invoke adapter (the buffered route, the SSE
//! route) shares.
//!
//! [`prepare`] does what can fail before anything runs (unknown agent, rate limit, body too
//! large, invalid input), so an adapter can answer those as plain 4xx responses;
//! [`run`] then answers from the response cache or runs the loop, and keeps the turn in the
//! session store: session history -> cache lookup -> tools -> loop -> session append -> cache
//! store. Only complete, successful answers are cached, and only for requests that carry their
//! whole conversation (`chat_history`): a continued session depends on history the key does not
//! see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tracing::Instrument;

use crate::Error;
use crate::agent::{OutputCheck, Run, RunEvent, RunReport, Sequential, TaskInputs};
use crate::api::input::{InvokeInput, parse_invoke_body};
use crate::api::types::{ExtraData, InvokeResponse, KeyValue, StateResponse};
use crate::config::{AgentConfig, AgentKind, ApiVersion};
use crate::llm::Message;
use crate::service::AppState;
use crate::service::task::{TaskTurn, invoke_task};
use crate::store::{CacheKey, Outcome, SessionId};
use crate::telemetry::metrics;

/// How the response cache treated one request (`x-cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Not looked up: `Cache-Control: no-cache`, or a session continued from the store.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// A request that passed every check that needs no upstream.
#[derive(Debug)]
pub struct Prepared {
    pub agent: Arc<AgentConfig>,
    pub input: InvokeInput,
}

/// Per-request facts besides the body.
#[derive(Clone, Copy)]
pub struct InvokeOptions<'a> {
    pub request_id: &'a str,
    /// Rate-limit subject: the caller's API key id, or "anonymous".
    pub caller: &'a str,
    /// `Cache-Control: no-cache` / `no-store`: neither read nor write the response cache.
    pub no_cache: bool,
    /// When the run must stop.
    pub deadline: Instant,
    /// Progress (tool calls started and finished), for streaming adapters.
    pub on_event: Option<&'a (dyn Fn(RunEvent) + Send + Sync)>,
}

/// A finished invoke.
#[derive(Debug)]
pub struct Invoked {
    pub response: InvokeResponse,
    pub cache: CacheStatus,
}

/// Finds the agent, admits the request (kill switch, rate limit, daily budgets) and parses the
/// body.
pub async fn prepare(
    state: &AppState,
    name: &str,
    version: &str,
    caller: &str,
    body: &[u8],
) -> Result<Prepared, Error> {
    let agent = state.find_agent(name, version)?;
    admit(state, &agent, caller).await?;
    if body.len() > state.settings.body_limit {
        return Err(Error::PayloadTooLarge { limit: state.settings.body_limit });
    }
    let input = parse_invoke_body(body, &agent.input)?;
    Ok(Prepared { agent, input })
}

/// The kill switch, the rate limit and the daily budgets, in at most one Redis round trip: a
/// fresh view of the switches decides from memory; a stale one is read again inside the
/// admission script when there is one (which then takes nothing from a disabled agent's caller),
/// else on its own (at most once a second per container).
async fn admit(state: &AppState, agent: &AgentConfig, caller: &str) -> Result<(), Error> {
    let disabled = |d| Err(Error::Disabled(d, None));
    let stale = state.switch.is_stale();
    if !stale && let Some(d) = state.switch.cached(&agent.name, &agent.version) {
        return disabled(d);
    }
    if let Some(limiter) = &state.rate_limiter {
        let fields = stale.then(|| crate::governance::switch_keys(&agent.name, &agent.version));
        let admission = limiter.admit(caller, fields.as_ref()).await;
        if let Some(switches) = admission.switches {
            state.switch.absorb(switches);
        }
        match admission.outcome {
            Outcome::Allowed | Outcome::Disabled => {}
            Outcome::RateLimited { retry_after } => {
                metrics::rate_limited(&agent.name, &agent.version);
                return Err(Error::RateLimited { retry_after_secs: retry_after.as_secs_f64().ceil() as u64 });
            }
            Outcome::OverBudget { budget, limit, used, resets_in, resets_at_ms } => {
                metrics::rate_limited(&agent.name, &agent.version);
                let resets_at = chrono::DateTime::from_timestamp_millis(resets_at_ms as i64)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                tracing::info!(caller, budget = budget.variable(), limit, used, "daily budget used up");
                return Err(Error::OverBudget {
                    budget,
                    limit,
                    used,
                    resets_at,
                    retry_after_secs: resets_in.as_secs_f64().ceil() as u64,
                });
            }
        }
    }
    // Fresh from the script, or read now (no limiter, or it could not bring the switches).
    match state.switch.check(&agent.name, &agent.version).await {
        Some(d) => disabled(d),
        None => Ok(()),
    }
}

/// Adds the tokens a run used to the caller's day (with `TA_DAILY_TOKEN_BUDGET`: one round trip).
pub(crate) async fn charge(state: &AppState, caller: &str, tokens: u64) {
    if let Some(limiter) = &state.rate_limiter
        && limiter.counts_tokens()
    {
        limiter.add_tokens(caller, tokens).await;
    }
}

/// What an agent answers: Teal's `InvokeResponse`, or a `StateResponse` for a
/// `tealagents/v1alpha1` agent.
#[derive(Debug)]
pub enum Answer {
    Invoke(Invoked),
    State(StateResponse),
}

/// [`prepare`] then [`answer`].
pub async fn invoke(
    state: &AppState,
    name: &str,
    version: &str,
    body: &[u8],
    opts: &InvokeOptions<'_>,
) -> Result<Answer, Error> {
    let prepared = prepare(state, name, version, opts.caller, body).await?;
    answer(state, prepared, body, opts).await
}

/// Answers a prepared request the way its agent's API version does: a task turn for
/// `tealagents/v1alpha1` (the caller is the task's user), an invoke otherwise.
pub async fn answer(
    state: &AppState,
    prepared: Prepared,
    body: &[u8],
    opts: &InvokeOptions<'_>,
) -> Result<Answer, Error> {
    if prepared.agent.api_version != ApiVersion::TealAgentsV1Alpha1 {
        return run(state, prepared, body, opts).await.map(Answer::Invoke);
    }
    let turn = TaskTurn {
        request_id: opts.request_id,
        user_id: opts.caller,
        deadline: opts.deadline,
        on_event: opts.on_event,
    };
    let Prepared { agent, input } = prepared;
    invoke_task(state, &agent, input, &turn).await.map(Answer::State)
}

/// Answers a prepared request: from the response cache, or by running the agent. `body` is the
/// request's JSON, the response cache's key.
pub async fn run(
    state: &AppState,
    prepared: Prepared,
    body: &[u8],
    opts: &InvokeOptions<'_>,
) -> Result<Invoked, Error> {
    let Prepared { agent, input } = prepared;
    let session = input.session_id.clone().unwrap_or_else(SessionId::generate);
    let continues = input.continues_session && input.session_id.is_some();
    let mut conversation = if continues {
        state.sessions.load(&session).await.map_err(Error::SessionStore)?
    } else {
        Vec::new()
    };
    conversation.extend(input.messages.iter().cloned());

    let cache_key = (!opts.no_cache && !input.continues_session).then(|| cache_key(&agent, body)).flatten();
    if let Some(key) = &cache_key
        && let Some(bytes) = state.cache.lookup(key).await
        && let Ok(mut hit) = serde_json::from_slice::<InvokeResponse>(&bytes)
    {
        opts.request_id.clone_into(&mut hit.request_id);
        session.as_str().clone_into(&mut hit.session_id);
        hit.set_extra("cached", "true");
        let mut turn = input.messages;
        turn.push(Message::assistant(hit.output_raw.clone()));
        keep_turn(state, &agent, &session, &turn, continues, &mut hit).await?;
        metrics::cache(&agent.name, &agent.version, CacheStatus::Hit.as_str());
        tracing::info!(agent = %agent.name, version = %agent.version, "served from the response cache");
        return Ok(Invoked { response: hit, cache: CacheStatus::Hit });
    }

    let inputs = TaskInputs { fields: input.fields, image: input.image };
    let context = input.context;
    let conversation = context.into_iter().chain(conversation).collect();
    // A streaming caller (one that takes events) gets the answer's text as it is written.
    // The OpenTelemetry GenAI `invoke_agent` span; the run's chat and execute_tool spans nest in it.
    let span = tracing::info_span!(
        "invoke_agent",
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.agent.name" = %agent.name,
        "gen_ai.agent.version" = %agent.version,
        "gen_ai.conversation.id" = %session.as_str(),
        "enduser.id" = %opts.caller,
    );
    let RunReport { output, trace, structured, .. } = execute(
        state,
        &agent,
        conversation,
        inputs,
        opts.caller,
        opts.deadline,
        opts.on_event,
        opts.on_event.is_some(),
    )
    .instrument(span)
    .await?;

    let mut turn = input.messages;
    turn.push(Message::assistant(output.clone()));
    let kept = state.sessions.append(&session, &turn).await;
    if kept.is_ok() {
        metrics::session_written(&agent.name, &agent.version);
    }
    tracing::info!(
        agent = %agent.name,
        version = %agent.version,
        iterations = trace.iterations,
        tool_calls = trace.tool_calls.len(),
        total_tokens = trace.usage.total_tokens,
        "agent run finished"
    );
    let mut response = InvokeResponse {
        session_id: session.as_str().to_owned(),
        request_id: opts.request_id.to_owned(),
        source: format!("{}:{}", agent.name, agent.version),
        token_usage: trace.usage.into(),
        output_raw: output,
        output_pydantic: structured,
        extra_data: ExtraData {
            items: vec![
                KeyValue { key: "iterations".into(), value: trace.iterations.to_string() },
                KeyValue { key: "tool_calls".into(), value: trace.tool_calls.len().to_string() },
                KeyValue { key: "cached".into(), value: "false".into() },
            ],
        },
    };
    history_kept(kept, continues, &mut response)?;
    let cache = match &cache_key {
        Some(key) => {
            let ttl = agent.cache_ttl.unwrap_or(state.settings.cache_ttl);
            if !ttl.is_zero()
                && let Ok(bytes) = serde_json::to_vec(&response)
            {
                state.cache.store(key, &bytes, ttl).await;
            }
            CacheStatus::Miss
        }
        None => CacheStatus::Bypass,
    };
    metrics::cache(&agent.name, &agent.version, cache.as_str());
    Ok(Invoked { response, cache })
}

/// Keeps a finished turn in the session store; see [`history_kept`] for a store that fails.
async fn keep_turn(
    state: &AppState,
    agent: &AgentConfig,
    session: &SessionId,
    turn: &[Message],
    continues: bool,
    response: &mut InvokeResponse,
) -> Result<(), Error> {
    let kept = state.sessions.append(session, turn).await;
    if kept.is_ok() {
        metrics::session_written(&agent.name, &agent.version);
    }
    history_kept(kept, continues, response)
}

/// What a failed session append means. A request that continues a session fails (503): its
/// caller counts on the history. Any other request is answered anyway, with
/// `extra_data.session_stored = "false"` and a warning, so a session store outage costs only
/// the history of conversations that had not started.
fn history_kept(
    kept: Result<(), crate::store::StoreError>,
    continues: bool,
    response: &mut InvokeResponse,
) -> Result<(), Error> {
    match kept {
        Ok(()) => Ok(()),
        Err(e) if continues => Err(Error::SessionStore(e)),
        Err(e) => {
            tracing::warn!(
                error = %crate::telemetry::error_chain(&e),
                session_id = %response.session_id,
                "session store unavailable: answered without keeping the history"
            );
            response.set_extra("session_stored", "false");
            Ok(())
        }
    }
}

/// The response cache key of a request: the agent and the canonical JSON of the body without
/// its `session_id` (which names where the turn is kept, not what is asked).
fn cache_key(agent: &AgentConfig, body: &[u8]) -> Option<CacheKey> {
    let mut value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    if let Some(o) = value.as_object_mut() {
        o.remove("session_id");
    }
    Some(CacheKey::new(&agent.name, &agent.version, &value))
}

/// Runs `agent` over `conversation`: its one agent (Chat), or its tasks in order (Sequential),
/// with every agent's tools (as the tool policies let `caller` have them) and the output type
/// checked when there is one. The tools of every
/// agent are gathered before the first LLM call, so a server that is down fails the request
/// before any token is spent.
#[allow(clippy::too_many_arguments)] // the request's facts, each used once; a struct would only rename them
pub(crate) async fn execute(
    state: &AppState,
    agent: &AgentConfig,
    conversation: Vec<Message>,
    inputs: TaskInputs,
    caller: &str,
    deadline: Instant,
    on_event: Option<&(dyn Fn(RunEvent) + Send + Sync)>,
    stream: bool,
) -> Result<RunReport, Error> {
    let toolboxes = try_join_all(agent.agents.iter().map(|spec| state.toolbox(agent, spec, caller))).await?;
    let output =
        agent.output.as_ref().map(|t| OutputCheck::new(t, state.settings.structured_output_model.clone()));
    let no_events = |_: RunEvent| {};
    let on_event = on_event.unwrap_or(&no_events);
    let report = match agent.kind {
        AgentKind::Chat => {
            let run = Run {
                agent: &agent.agents[0],
                llm: state.llm.as_ref(),
                pool: &state.mcp,
                tools: &toolboxes[0],
                deadline,
                on_event,
                output: output.as_ref(),
                stream,
                switch: Some(state.switch.guard(&agent.name, &agent.version)),
            };
            run.execute(conversation).await.map_err(Error::from)
        }
        AgentKind::Sequential => {
            let seq = Sequential {
                config: agent,
                llm: state.llm.as_ref(),
                pool: &state.mcp,
                toolboxes: &toolboxes,
                deadline,
                on_event,
                stream,
                output: output.as_ref(),
                switch: Some(state.switch.guard(&agent.name, &agent.version)),
            };
            seq.execute(conversation, inputs).await.map_err(Error::from)
        }
    };
    let trace = match &report {
        Ok(r) => Some(&r.trace),
        Err(e) => e.trace(),
    };
    charge(state, caller, trace.map_or(0, |t| t.usage.total_tokens)).await;
    if let Some(t) = trace {
        let tools: u64 = t.tool_calls.iter().map(|c| c.ms).sum();
        metrics::run_times(&agent.name, &agent.version, t.llm_time, Duration::from_millis(tools));
    }
    report
}

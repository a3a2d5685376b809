//! Our side of the conversation: who we say we are, and what we answer when a server asks us
//! something in the middle of a call.
//!
//! We declare no client capability (no sampling, no roots, no elicitation): a Lambda has no
//! user to ask while a tool runs, and a server that checks capabilities then takes its
//! non-interactive path. A server that asks anyway (`elicitation/create` on the call's stream)
//! gets a JSON-RPC error saying why, never a blind `decline` (which would tell it the user
//! refused), and the request is noted against the call it arrived with, so the pool can end
//! the run with an error naming the server and the tool. When the governance approval flow
//! exists, this is where a form request becomes an approval request instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use rmcp::ClientHandler;
use rmcp::model::{ClientConfig, ElicitRequestParams, ElicitResult, ErrorCode, ErrorData, RequestId};
use rmcp::service::{InboundStreamOrigin, RequestContext, RoleClient};

use super::pool::lock;

/// At most this many unanswered questions are remembered per client: a misbehaving server
/// cannot grow it without bound (the oldest calls are the ones that have long finished).
const MAX_NOTED: usize = 64;

/// What a server asked for while one of our requests was in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A form for the user to fill in.
    Form,
    /// A URL for the user to visit.
    Url,
}

impl Asked {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Asked::Form => "elicitation (form)",
            Asked::Url => "elicitation (URL)",
        }
    }
}

/// The client handler of every connection: our identity, and the questions servers asked.
#[derive(Clone, Default)]
pub(super) struct TealClient {
    asked: Arc<StdMutex<HashMap<RequestId, Asked>>>,
}

impl TealClient {
    /// What the server asked while request `id` was in flight, if anything (and forgets it).
    pub(super) fn take_asked(&self, id: &RequestId) -> Option<Asked> {
        lock(&self.asked).remove(id)
    }

    fn note(&self, id: RequestId, asked: Asked) {
        let mut noted = lock(&self.asked);
        if noted.len() >= MAX_NOTED {
            noted.clear();
        }
        noted.insert(id, asked);
    }
}

/// Our `clientInfo` and capabilities (none).
pub(super) fn client_info() -> ClientConfig {
    let mut info = ClientConfig::default();
    info.client_info.name = "teal-serverless".into();
    info.client_info.version = env!("CARGO_PKG_VERSION").into();
    info
}

impl ClientHandler for TealClient {
    fn get_info(&self) -> ClientConfig {
        client_info()
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let asked = match &request {
            ElicitRequestParams::UrlElicitationParams { .. } => Asked::Url,
            _ => Asked::Form,
        };
        match context.extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => self.note(id.clone(), asked),
            _ => {
                tracing::warn!(kind = asked.describe(), "an MCP server asked for user input outside any call")
            }
        }
        Err(ErrorData::new(
            ErrorCode::INVALID_REQUEST,
            "this client cannot collect user input during a tool call (no user is present); \
             the run ends and its caller is told which tool asked",
            None,
        ))
    }
}

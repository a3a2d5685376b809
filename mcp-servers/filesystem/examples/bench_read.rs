//! Tool-call round trip of `read_file` on a 4 KB file, over HTTP on loopback, with a warm rmcp
//! client: p50/p90/p99/max over N calls (default 2000, after 200 warm-up calls), for both
//! session modes. JSON logs are on (written to a sink), as in production.
//!
//! ```sh
//! cargo run --release -p teal-mcp-filesystem --example bench_read [-- CALLS]
//! ```

use std::time::{Duration, Instant};

use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientConfig},
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::json;
use teal_mcp_filesystem::{FsConfig, ServerOptions, SessionMode, serve_with_options};

type Error = Box<dyn std::error::Error + Send + Sync>;

const WARM_UP: usize = 200;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let calls: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(2000);
    tracing_subscriber::fmt().json().with_writer(std::io::sink).init();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("page.txt"), "0123456789abcde\n".repeat(256))?; // 4096 bytes
    println!("read_file of a 4096-byte file, {calls} calls after {WARM_UP} warm-up calls, one warm client");
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let mut samples = run(dir.path(), mode, calls).await?;
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len())?;
        println!(
            "{mode:?}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms",
            ms(at(0.50)),
            ms(at(0.90)),
            ms(at(0.99)),
            ms(samples[samples.len() - 1]),
            ms(mean)
        );
    }
    Ok(())
}

async fn run(root: &std::path::Path, mode: SessionMode, calls: usize) -> Result<Vec<Duration>, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let cfg = FsConfig::new(root)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let options = ServerOptions::new(mode);
        serve_with_options(listener, cfg, &options, async move {
            let _ = stopped.await;
        })
        .await
    });
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url));
    let client = ClientConfig::default().serve(transport).await?;
    let request = || {
        let args = json!({"path": "page.txt"}).as_object().cloned().unwrap_or_default();
        CallToolRequestParams::new("read_file").with_arguments(args)
    };
    let mut samples = Vec::with_capacity(calls);
    for i in 0..WARM_UP + calls {
        let started = Instant::now();
        let result = client.call_tool(request()).await?;
        let elapsed = started.elapsed();
        if result.is_error == Some(true) {
            return Err(format!("read_file failed: {result:?}").into());
        }
        if i >= WARM_UP {
            samples.push(elapsed);
        }
    }
    client.cancel().await?;
    let _ = stop.send(());
    server.await??;
    Ok(samples)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

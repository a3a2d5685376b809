//! Latency of a response-cache hit against a real Redis, next to a raw PING round trip.
//!
//! `cargo run --release -p teal-core --example redis_bench [-- URL [N]]`
//! (default `redis://127.0.0.1:6379`, N = 5000 sequential calls after 500 warm-up calls).

use std::time::{Duration, Instant};

use teal_core::store::{CacheKey, RedisConnection, RedisResponseCache, RedisSettings, ResponseCache};

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

fn show(name: &str, samples: Vec<Duration>) -> Duration {
    let (p50, p99, max) = percentiles(samples);
    println!("{name:<34} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs", us(p50), us(p99), us(max));
    p50
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn measure<F, Fut>(n: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..500 {
        call().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    samples
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let n: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(5000);

    let raw = redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?;
    let mut settings = RedisSettings::new(url.as_str());
    settings.prefix = format!("teal-bench:{}:", uuid::Uuid::new_v4());
    let conn = RedisConnection::open(&settings, None)?;
    let cache = RedisResponseCache::new(conn.clone(), 256 * 1024);
    let key =
        CacheKey::new("bench", "1", &serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}));
    // A typical InvokeResponse body (~2 KiB).
    let body = serde_json::to_vec(&serde_json::json!({
        "session_id": "s", "request_id": "r", "source": "bench:1",
        "token_usage": {"completion_tokens": 100, "prompt_tokens": 1000, "total_tokens": 1100},
        "output_raw": "x".repeat(1800), "extra_data": {"items": []},
    }))?;
    cache.put(&key, &body, Duration::from_secs(300)).await?;
    println!("{n} sequential calls against {url}, value {} bytes", body.len());

    let ping = show(
        "raw PING (multiplexed connection)",
        measure(n, || {
            let mut c = raw.clone();
            async move {
                let _: String = redis::cmd("PING").query_async(&mut c).await.expect("ping");
            }
        })
        .await,
    );
    let raw_key = format!("{}cache:{}", settings.prefix, key.as_str());
    let raw_get = show(
        "raw GET of the cached bytes",
        measure(n, || {
            let (mut c, k) = (raw.clone(), &raw_key);
            async move {
                let v: Option<Vec<u8>> = redis::cmd("GET").arg(k).query_async(&mut c).await.expect("get");
                assert!(v.is_some());
            }
        })
        .await,
    );
    let hit = show(
        "RedisResponseCache::get (hit)",
        measure(n, || async {
            assert!(cache.get(&key).await.expect("get").is_some());
        })
        .await,
    );
    let key_cost = show(
        "CacheKey::new (hashing the input)",
        measure(n, || async {
            std::hint::black_box(CacheKey::new(
                "bench",
                "1",
                &serde_json::json!({"messages": [{"role": "user"}]}),
            ));
        })
        .await,
    );
    println!(
        "cache hit - PING = {:.1} µs (target ≤ 200 µs); hit - raw GET = {:.1} µs; key {:.1} µs",
        us(hit) - us(ping),
        us(hit) - us(raw_get),
        us(key_cost)
    );
    let mut c = raw.clone();
    let _: i64 = redis::cmd("DEL").arg(&raw_key).query_async(&mut c).await?;
    Ok(())
}

//! `teal disable NAME[/VERSION]` and `teal enable NAME[/VERSION]`: the kill switch, a field of
//! one Redis hash that every container (each Lambda, each `teal serve`) reads at most once a
//! second (`teal_core::governance::KillSwitch`).
//!
//! It needs the deployment's Redis (`TA_REDIS_URL`, or Teal's `TA_REDIS_HOST`…, and
//! `TA_REDIS_PREFIX`, `TA_REDIS_AUTH_SECRET` as the functions have them). Without Redis there is
//! nothing shared to switch: the command says so and fails.

use anyhow::{Context, bail};
use teal_core::governance::{REFRESH_EVERY, SwitchTarget, note};
use teal_core::settings::{Env, Settings};
use teal_core::store::{RedisConnection, RedisSwitchStore, SwitchStore};

#[derive(clap::Args)]
pub struct DisableArgs {
    /// The agent: NAME (every version) or NAME/VERSION.
    target: String,
    /// Why, shown in the 503 every caller gets.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args)]
pub struct EnableArgs {
    /// The switch to turn off again: NAME or NAME/VERSION, as it was disabled.
    target: String,
}

const NO_REDIS: &str = "the kill switch lives in the deployment's Redis: set TA_REDIS_URL (or Teal's \
     TA_REDIS_HOST) and TA_REDIS_PREFIX as the functions have them. Without Redis each process keeps \
     its own state and no switch is read: stop the `teal serve` process instead";

async fn store() -> anyhow::Result<(RedisSwitchStore, String)> {
    let settings = Settings::read(&Env::process())?;
    let Some(redis) = &settings.stores.redis else { bail!("{NO_REDIS}") };
    let (secrets, _) = teal_core::bootstrap::build_secrets(&settings).await;
    let conn = RedisConnection::connect(redis, secrets).await?;
    let place = format!("{}switch at {}", conn.prefix(), conn.addr());
    Ok((RedisSwitchStore::new(conn), place))
}

fn parse(target: &str) -> anyhow::Result<SwitchTarget> {
    SwitchTarget::parse(target).map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn disable(args: DisableArgs) -> anyhow::Result<()> {
    let target = parse(&args.target)?;
    if let Some(r) = &args.reason
        && (r.len() > 200 || r.chars().any(char::is_control))
    {
        bail!("--reason: at most 200 characters, without control characters");
    }
    let (store, place) = store().await?;
    let set = store.set(&target.key(), &note(args.reason.as_deref())).await.context("writing the switch")?;
    if !set {
        bail!(
            "{} switches are already on: enable some first (`teal enable NAME`)",
            teal_core::store::MAX_SWITCHES
        );
    }
    println!(
        "disabled {} ({place}): every container answers 503 within {} s; runs in flight stop before their next LLM or tool call",
        target.key(),
        REFRESH_EVERY.as_secs()
    );
    Ok(())
}

pub async fn enable(args: EnableArgs) -> anyhow::Result<()> {
    let target = parse(&args.target)?;
    let (store, place) = store().await?;
    let cleared = store.clear(&target.key()).await.context("clearing the switch")?;
    if cleared {
        println!(
            "enabled {} ({place}): every container serves it again within {} s",
            target.key(),
            REFRESH_EVERY.as_secs()
        );
    } else {
        println!("{} was not disabled ({place})", target.key());
    }
    // A switch on the whole agent (or on one version) still holds what this one does not.
    let still = store.read_all().await.context("reading the switches")?;
    let mut holding: Vec<&String> = still
        .keys()
        .filter(|k| **k == target.name || k.strip_prefix(&format!("{}/", target.name)).is_some())
        .collect();
    holding.sort();
    if !holding.is_empty() {
        let list: Vec<&str> = holding.iter().map(|k| k.as_str()).collect();
        println!("still disabled by: {} (teal enable each)", list.join(", "));
    }
    Ok(())
}

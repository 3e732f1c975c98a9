//! The `voxbridge` binary: CLI → config → telemetry → run until shutdown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::{Parser, Subcommand};
use voxbridge::app::{App, ShutdownSignals, shutdown_signal};
use voxbridge::config::Config;
use voxbridge::mock_realtime::{self, MockLog, MockOptions};
use voxbridge::providers::carrier::Provider;
use voxbridge::replay::telnyx::TelnyxReplay;
use voxbridge::replay::telnyx_api::FakeTelnyx;
use voxbridge::replay::{self, ReplayOptions, Target};
use voxbridge::telemetry;

#[derive(Parser)]
#[command(name = "voxbridge", version, about = "An AI voice model on the phone.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

/// A playback speed: above 0 (0 would never play a frame: replay waited for ever), at most 100.
fn speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 100.0 => Ok(x),
        Ok(_) => Err("must be above 0 and at most 100 (2 = twice real time)".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default). Every setting is also an environment variable (`--help` names it).
    Serve {
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Check this deployment's configuration and what it must reach (database, public URL,
    /// carriers, OpenAI, limits): one line per check, exit 0 only when every one passes.
    Doctor {
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Ask a running server whether it is alive (`GET /healthz`): exit 0 when it answers 200 within
    /// 3 s, else 1 (the Docker image's HEALTHCHECK; the slim image has no curl).
    Health {
        /// Defaults to this host's `VOXBRIDGE_LISTEN` port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Play recorded fixture calls against a running server as Twilio (or Telnyx) would.
    Replay {
        #[arg(required = true)]
        fixtures: Vec<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The URL the server signs against (its VOXBRIDGE_PUBLIC_URL); defaults to --url.
        #[arg(long)]
        public_url: Option<String>,
        /// Twilio auth token for signing; with it, requests are signed as Twilio signs them.
        #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
        auth_token: Option<String>,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Playback speed (2.0 = twice real time; above 0, at most 100).
        #[arg(long, default_value_t = 1.0, value_parser = speed)]
        speed: f64,
        /// Spread call starts over this many milliseconds (default: 10 ms per call, at most 10 s).
        #[arg(long)]
        ramp_ms: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The carrier to play.
        #[arg(long, value_enum, default_value = "twilio")]
        provider: Provider,
        /// Telnyx: where replay serves its stand-in Call Control API (the server's TELNYX_API_BASE).
        #[arg(long, default_value = "127.0.0.1:9090")]
        telnyx_api_listen: String,
        /// Telnyx: base64 32-byte Ed25519 secret key to sign webhooks with (its public half is the
        /// server's TELNYX_PUBLIC_KEY); unsigned without.
        #[arg(long, env = "TELNYX_REPLAY_SIGNING_KEY", hide_env_values = true)]
        telnyx_signing_key: Option<String>,
        /// Telnyx: swap neighbouring media frames, as Telnyx may deliver them.
        #[arg(long)]
        shuffle: bool,
        /// Play the callee of calls the server places instead of calling in: each dial the
        /// server sends to the stand-in API (Telnyx's, or Twilio's at --twilio-api-listen) is
        /// answered, the fixture streamed, the call hung up.
        #[arg(long)]
        outbound: bool,
        /// Twilio, with --outbound: where replay serves its stand-in REST API (the server's
        /// TWILIO_API_BASE).
        #[arg(long, default_value = "127.0.0.1:9091")]
        twilio_api_listen: String,
        /// Also play the model: serve the mock model on this address in this process (point the
        /// server's VOXBRIDGE_REALTIME_URL at ws://ADDR/v1/realtime). Caller audio becomes probe
        /// frames (loud where the recording speaks, quiet where it does not), answers too, and
        /// every 20 ms frame is timed one way, end to end, on this process's clock.
        #[arg(long, value_name = "ADDR")]
        serve_model: Option<String>,
        /// With --serve-model: Realtime answers stream this many times faster than real time (1:
        /// as a model under load does; then nothing waits for playout). GPT-Live answers always
        /// stream at real time, as the service does.
        #[arg(long, default_value_t = 1.0, value_parser = speed)]
        model_speed: f64,
    },
    /// A local stand-in for the OpenAI Realtime API.
    MockRealtime {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        #[arg(long, default_value_t = 4.0, value_parser = speed)]
        speed: f64,
        /// End the call (tool call `end_call`) after this many caller turns.
        #[arg(long)]
        end_call_after: Option<u32>,
        /// Fault injection: drop the first connection this many ms after it opened (no close
        /// frame), to watch the bridge open a new session mid-call.
        #[arg(long)]
        drop_first_after_ms: Option<u64>,
        /// Answer with two assistant items per response: a preamble this many ms long, then
        /// the rest (as current models may).
        #[arg(long)]
        preamble_ms: Option<u64>,
        /// A realistic model's delay from a response's start to its first audio (Realtime).
        #[arg(long, default_value_t = 0)]
        first_audio_delay_ms: u64,
        /// A rehearsal script: what the AI says and does after each caller turn (a JSON file:
        /// `{"turns": [{"say", "tool" + "arguments" | "outcome" | "transfer" | "end_call"}]}`).
        #[arg(long)]
        script: Option<PathBuf>,
    },
}

/// Stops start-up with one line naming the variable at fault (exit code 2).
fn refuse(line: impl std::fmt::Display) -> ! {
    eprintln!("{line}");
    std::process::exit(2)
}

/// Parses the command line; a bad value that came from an environment variable is reported by
/// the variable's name, not the flag's.
fn parse_cli() -> Cli {
    use clap::CommandFactory;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match voxbridge::config::env_error(&Cli::command(), &e) {
            Some(line) => refuse(line),
            None => e.exit(),
        },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = parse_cli();
    voxbridge::install_tls();
    let command = cli.command.unwrap_or(Command::Serve { config: Box::new(cli.config.clone()) });
    match command {
        Command::Serve { config } => {
            let config = *config;
            telemetry::init_logging(config.log_format).unwrap_or_else(|e| refuse(e));
            let listen = config.listen;
            let app = App::build(config).await.unwrap_or_else(|e| refuse(e));
            let listener = match tokio::net::TcpListener::bind(listen).await {
                Ok(l) => l,
                Err(e) => refuse(format!("VOXBRIDGE_LISTEN: cannot listen on {listen}: {e}")),
            };
            let bound = listener.local_addr().unwrap_or(listen);
            // Listening for signals before saying we serve: a stop that comes at once is a drain.
            let mut signals =
                ShutdownSignals::install().unwrap_or_else(|e| refuse(format!("cannot listen for SIGTERM/SIGINT: {e}")));
            tracing::info!(listen = %bound, "voxbridge serving");
            let first_signal = async move {
                signals.recv().await;
                // A second signal stops at once, without waiting for the drain.
                tokio::spawn(async move {
                    signals.recv().await;
                    eprintln!("second signal: exiting now, without waiting for live calls");
                    std::process::exit(130);
                });
            };
            app.serve(listener, first_signal).await?;
            tracing::info!("voxbridge stopped");
        }
        Command::Replay {
            fixtures,
            url,
            public_url,
            auth_token,
            concurrency,
            speed,
            ramp_ms,
            json,
            provider,
            telnyx_api_listen,
            telnyx_signing_key,
            shuffle,
            outbound,
            twilio_api_listen,
            serve_model,
            model_speed,
        } => {
            telemetry::init_stderr_logging().unwrap_or_else(|e| refuse(e));
            let ramp = Duration::from_millis(ramp_ms.unwrap_or((concurrency as u64 * 10).min(10_000)));
            let public_url = public_url.unwrap_or_else(|| url.clone());
            let twilio_api = match (outbound, provider) {
                (true, Provider::Twilio) => {
                    let api = voxbridge::replay::twilio_api::FakeTwilio::spawn(&twilio_api_listen)
                        .await
                        .with_context(|| format!("cannot serve the stand-in Twilio API on {twilio_api_listen}"))?;
                    tracing::info!(url = %api.url, "stand-in Twilio API serving: run voxbridge with TWILIO_API_BASE set to it");
                    Some(api)
                }
                _ => None,
            };
            let telnyx = match provider {
                Provider::Twilio => None,
                Provider::Telnyx => {
                    let api = FakeTelnyx::spawn(&telnyx_api_listen)
                        .await
                        .with_context(|| format!("cannot serve the stand-in Telnyx API on {telnyx_api_listen}"))?;
                    tracing::info!(url = %api.url, "stand-in Telnyx API serving: run voxbridge with TELNYX_API_BASE set to it");
                    let signing_key = match telnyx_signing_key {
                        None => None,
                        Some(k) => Some(
                            base64::engine::general_purpose::STANDARD
                                .decode(k.trim())
                                .ok()
                                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                                .context("TELNYX_REPLAY_SIGNING_KEY must be base64 of 32 bytes")?,
                        ),
                    };
                    if let Some(key) = &signing_key {
                        let public = voxbridge::providers::telnyx::signature::public_key_base64(key);
                        tracing::info!(%public, "webhooks signed: the server's TELNYX_PUBLIC_KEY must be this key");
                    }
                    Some(TelnyxReplay { api, signing_key, shuffle, dialed: outbound })
                }
            };
            let probe = match serve_model {
                None => None,
                Some(addr) => {
                    let listener = tokio::net::TcpListener::bind(&addr)
                        .await
                        .with_context(|| format!("--serve-model: cannot listen on {addr}"))?;
                    let book = voxbridge::probe::Book::default();
                    let opts = MockOptions { speed: model_speed, probe: Some(book.clone()), ..MockOptions::default() };
                    tokio::spawn(mock_realtime::serve(listener, opts, MockLog::bounded(64)));
                    tracing::info!(url = %format!("ws://{addr}/v1/realtime"), "the model is played here: point VOXBRIDGE_REALTIME_URL at it");
                    Some(book)
                }
            };
            let opts = ReplayOptions {
                fixtures,
                target: Target {
                    url,
                    public_url,
                    auth_token,
                    speed,
                    voice_path: "/twilio/voice".into(),
                    call_sid: None,
                    telnyx,
                    twilio_api,
                    probe,
                    keep_heard: false,
                },
                concurrency,
                ramp,
                progress: !json,
                // One line per call when they fit on a screen.
                per_call: concurrency <= 50,
            };
            let report = replay::run(opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            if report.failed_calls > 0 {
                std::process::exit(1);
            }
        }
        Command::Doctor { config } => {
            voxbridge::install_tls();
            let checks = voxbridge::doctor::run(&config).await;
            for c in &checks {
                println!("{}", c.line());
            }
            let failed = checks.iter().filter(|c| !c.passed()).count();
            println!("{} checks, {failed} failed", checks.len());
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Command::Health { url } => {
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/healthz", cli.config.listen.port()));
            voxbridge::install_tls();
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => println!("ok: {url}"),
                Ok(r) => {
                    eprintln!("{url} answered {}", r.status());
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("{url}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::MockRealtime {
            listen,
            speed,
            end_call_after,
            drop_first_after_ms,
            preamble_ms,
            first_audio_delay_ms,
            script,
        } => {
            telemetry::init_logging(cli.config.log_format).unwrap_or_else(|e| refuse(e));
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(url = %format!("ws://{listen}/v1/realtime"), "mock realtime model serving");
            let drop_first_after = drop_first_after_ms.map(std::time::Duration::from_millis);
            let script = match script {
                None => None,
                Some(path) => Some(std::sync::Arc::new(
                    voxbridge::mock_realtime::script::Script::read(&path)
                        .map_err(|e| anyhow::anyhow!("--script {e}"))?,
                )),
            };
            let opts = MockOptions {
                script,
                speed,
                end_call_after,
                drop_first_after,
                preamble_ms,
                first_audio_delay_ms,
                ..MockOptions::default()
            };
            tokio::select! {
                r = mock_realtime::serve(listener, opts, MockLog::bounded(64)) => r?,
                _ = shutdown_signal() => {}
            }
        }
    }
    Ok(())
}

//! Wires configuration, the call bridge, the embedded mock model and the router, and runs the
//! server until a signal: then it drains (readiness off, no new calls), waits for live calls up
//! to the drain timeout, ends the rest, and exits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::call::admission::{Admission, PendingCaps};
use crate::call::driver::Bridge;
use crate::config::{Config, ConfigError};
use crate::connections::Limits;
use crate::control::{self, AppState};
use crate::lifecycle::retry::RetryPolicy;
use crate::mock_realtime::{self, MockHandle, MockOptions};
use crate::model::realtime::connection::Endpoint;
use crate::model::{ModelApi, ModelConfig};
use crate::providers::carrier::{Carriers, TelnyxLink};
use crate::providers::stream_token::StreamTokens;
use crate::providers::telnyx::rest::TelnyxRest;
use crate::providers::telnyx::signature::PublicKey;
use crate::providers::twilio::rest::TwilioRest;
use crate::queue::worker::{Dialer, DialerConfig};
use crate::store::{Store, redact_url};
use crate::telemetry;
use crate::webhooks::deliverer::DelivererConfig;

/// A built server, ready to serve.
pub struct App {
    pub config: Arc<Config>,
    pub bridge: Arc<Bridge>,
    /// The in-process mock model, when no API key is configured.
    pub mock: Option<MockHandle>,
    pub store: Store,
}

impl App {
    pub async fn build(mut config: Config) -> Result<App, ConfigError> {
        config.validate()?;
        // Checked with the API's own rules, as a call's window would be.
        crate::control::call_request::default_window(&config)?;
        // The caps that hold sockets, fitted to the open-file limit (raised to the hard one).
        let caps = crate::connections::fit_file_limit(crate::connections::Caps {
            live_calls: config.max_live_calls,
            pending_streams: config.max_pending_streams,
            connections: config.max_connections,
        });
        config.max_live_calls = caps.live_calls;
        config.max_pending_streams = caps.pending_streams;
        config.max_pending_streams_per_ip = config.max_pending_streams_per_ip.min(caps.pending_streams);
        config.max_connections = caps.connections;
        crate::install_tls();
        telemetry::prometheus();
        let store = open_store(&config.database_url).await?;
        let (mut realtime_url, mut live_url) = (config.realtime_url.clone(), config.live_url.clone());
        let mock = if config.uses_embedded_mock() {
            let script = match &config.mock_script {
                None => None,
                Some(path) => Some(std::sync::Arc::new(
                    mock_realtime::script::Script::read(path)
                        .map_err(|problem| ConfigError { variable: "VOXBRIDGE_MOCK_SCRIPT", problem })?,
                )),
            };
            let opts = MockOptions { script, ..MockOptions::default() };
            // Its log keeps the latest calls only: the server runs for weeks.
            let log = mock_realtime::MockLog::bounded(64);
            let mock = mock_realtime::spawn_local_with(opts, log).await.map_err(|e| ConfigError {
                variable: "VOXBRIDGE_REALTIME_URL",
                problem: format!("cannot start the built-in mock model: {e}"),
            })?;
            (realtime_url, live_url) = (mock.url(), mock.live_url());
            info!(url = %realtime_url, "no OPENAI_API_KEY: calls are answered by the built-in mock model");
            Some(mock)
        } else {
            None
        };
        let api = ModelApi::from(config.model_api);
        let model = ModelConfig {
            instructions: config.instructions.clone(),
            voice: config.voice.clone(),
            greeting: config.greeting(),
            backend_model: config.live_backend_model.clone(),
            ..ModelConfig::defaults(api, config.model_of(api), config.model_audio())
        };
        let twilio_rest = match (&config.twilio_account_sid, &config.twilio_auth_token) {
            (Some(sid), Some(token)) => Some(TwilioRest::new(&config.twilio_api_base, sid, token)),
            _ => None,
        };
        let telnyx = match (&config.telnyx_api_key, &config.telnyx_connection_id) {
            (Some(key), Some(connection)) => Some(TelnyxLink {
                rest: TelnyxRest::new(&config.telnyx_api_base, key, connection),
                codec: config.telnyx_codec,
            }),
            _ => None,
        };
        control::unsigned::log_at_start_up(&config);
        // Shared by every instance on this database, so a media socket may land on any of them.
        let key = store.shared_key("stream_tokens").await.map_err(|e| ConfigError {
            variable: "VOXBRIDGE_DATABASE_URL",
            problem: format!("cannot read the stream-token key: {e}"),
        })?;
        let tokens = Arc::new(StreamTokens::new(key));
        let carriers = Carriers {
            twilio: twilio_rest,
            telnyx,
            public_url: config.public_url.trim_end_matches('/').to_string(),
            tokens: Arc::clone(&tokens),
            speeches: Default::default(),
            apology: config.apology.clone(),
            machine: control::steer::dialling_machine(&config),
        };
        if let Some(dir) = &config.record_dir {
            std::fs::create_dir_all(dir).map_err(|e| ConfigError {
                variable: "VOXBRIDGE_RECORD_DIR",
                problem: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let (shutdown, _) = watch::channel(false);
        let failover = config.model_failover && config.failover_usable(&realtime_url, &live_url);
        if config.model_failover && !failover {
            info!(
                "model failover off: without OPENAI_API_KEY, OpenAI's endpoint for the other API would refuse the call"
            );
        }
        let bridge = Arc::new(Bridge {
            endpoint: Endpoint {
                api: ModelApi::Realtime,
                url: realtime_url,
                model: config.realtime_model.clone(),
                api_key: config.openai_api_key.clone(),
                connect_timeout: Duration::from_millis(config.model_connect_timeout_ms),
                retries: 1,
                idle_timeout: Duration::from_millis(config.model_idle_timeout_ms),
            },
            live_endpoint: Endpoint {
                api: ModelApi::Live,
                url: live_url,
                model: config.live_model.clone(),
                api_key: config.openai_api_key.clone(),
                connect_timeout: Duration::from_millis(config.model_connect_timeout_ms),
                retries: 1,
                idle_timeout: Duration::from_millis(config.model_idle_timeout_ms),
            },
            model_failover: failover,
            model_health: Default::default(),
            prewarm: config.prewarm,
            prewarms: Default::default(),
            prewarm_deadline: Duration::from_secs(config.ring_timeout_s as u64 + 15),
            model,
            playout_lead: Duration::from_millis(config.playout_lead_ms),
            response_timeout: Duration::from_millis(config.model_response_timeout_ms),
            session_max: Duration::from_secs(config.model_session_rotate_s),
            start_timeout: config.start_timeout(),
            carrier_idle_timeout: Duration::from_millis(config.carrier_idle_timeout_ms),
            tokens,
            admission: Arc::new(Admission::with_pending_caps(
                config.max_live_calls,
                PendingCaps { total: config.max_pending_streams, per_peer: config.max_pending_streams_per_ip },
            )),
            carriers,
            record_dir: config.record_dir.clone(),
            recordings: recorder(&config)?,
            shutdown,
            store: Some(store.clone()),
            prices: crate::pricing::Prices { models_free: mock.is_some(), ..config.price_table()? },
            max_call_duration: Duration::from_secs(config.max_call_duration_s.into()),
            tool_guard: crate::webhooks::post::Guard {
                secret: config.webhook_secret.clone(),
                allow_private: config.webhook_allow_private,
                timeout: crate::call::bridge::TOOL_TIMEOUT,
            },
            live_calls: Default::default(),
        });
        log_start_up(&config, mock.is_some(), &bridge.carriers);
        Ok(App { config: Arc::new(config), bridge, mock, store })
    }

    pub fn router(&self) -> axum::Router {
        control::router(AppState {
            config: Arc::clone(&self.config),
            bridge: Arc::clone(&self.bridge),
            store: self.store.clone(),
            api_keys: Arc::new(crate::control::auth::parse_keys(self.config.api_keys.as_deref())),
            retry: RetryPolicy::new(self.config.retry_base_ms, self.config.retry_cap_ms),
            rate_limit: self.config.api_rate_limit.map(|r| Arc::new(crate::control::auth::RateLimit::new(r))),
            telnyx_key: self.config.telnyx_public_key.as_deref().and_then(PublicKey::from_base64),
        })
    }

    /// Serves on `listener` until `signal` resolves, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let bridge = Arc::clone(&self.bridge);
        let drain = Duration::from_secs(self.config.drain_timeout_s);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stop_dialling, dialling) = watch::channel(false);
        let dialer = Dialer::new(
            self.store.clone(),
            self.bridge.carriers.clone(),
            DialerConfig {
                poll: Duration::from_millis(self.config.worker_poll_ms),
                lease: Duration::from_millis(self.config.lease_ms),
                max_running: self.config.max_concurrent_calls as i64,
                ring_timeout_s: self.config.ring_timeout_s,
                retry: RetryPolicy::new(self.config.retry_base_ms, self.config.retry_cap_ms),
                retain_done: Duration::from_secs(self.config.retain_done_jobs_h * 3600),
                retain_failed: Duration::from_secs(self.config.retain_failed_jobs_h * 3600),
                retain_calls: Duration::from_secs(self.config.call_retention_days * 86_400),
                max_dials_per_second: self.config.max_dials_per_second,
                max_call_duration_s: self.config.max_call_duration_s,
                status_grace: Duration::from_millis(self.config.status_grace_ms),
            },
        )
        .named(&self.config.instance())
        .on_dialled({
            let bridge = Arc::clone(&self.bridge);
            Arc::new(move |call_id, provider| bridge.prewarm_call(call_id, provider))
        })
        .hold_while({
            let bridge = Arc::clone(&self.bridge);
            Arc::new(move || bridge.model_health.is_open(crate::store::now_ms()))
        });
        let notices_for = Arc::clone(&self.bridge);
        self.store.listen(dialer.waker(), move |notice| notices_for.on_notice(notice));
        let holding = dialer.holding();
        let dialling_task = tokio::spawn(dialer.run(dialling.clone()));
        let events = DelivererConfig {
            secret: self.config.webhook_secret.clone(),
            allow_private: self.config.webhook_allow_private,
            poll: Duration::from_millis(self.config.worker_poll_ms),
            max_attempts: 8,
            timeout: Duration::from_secs(5),
            prices: self.bridge.prices.clone(),
        };
        let delivering_task =
            tokio::spawn(crate::webhooks::deliverer::run(self.store.clone(), events, dialling.clone()));
        let analysis = crate::analysis::worker::AnalysisConfig {
            url: self.config.analysis_url.clone(),
            model: self.config.analysis_model.clone(),
            api_key: self.config.openai_api_key.clone(),
            poll: Duration::from_millis(self.config.worker_poll_ms.max(50)),
            timeout: Duration::from_secs(60),
            retry_base: Duration::from_millis(self.config.analysis_retry_ms),
            prices: self.bridge.prices.clone(),
        };
        if let Some(recorder) = self.bridge.recordings.clone() {
            let worker = crate::recording::worker::WorkerConfig {
                storage: recorder.storage,
                retry_base: Duration::from_millis(self.config.recordings_retry_ms.max(10)),
                retain: Duration::from_secs(self.config.call_retention_days * 86_400),
            };
            tokio::spawn(crate::recording::worker::run(self.store.clone(), worker, recorder.wake, dialling.clone()));
        }
        let analysing_task = tokio::spawn(crate::analysis::worker::run(self.store.clone(), analysis, dialling));
        tokio::spawn(crate::telemetry::upkeep(Duration::from_secs(1)));
        tokio::spawn(async move {
            signal.await;
            info!(
                live = bridge.admission.live(),
                drain_s = drain.as_secs(),
                "shutdown requested: draining (no new calls; live calls get up to {} s; a second signal stops at once)",
                drain.as_secs()
            );
            bridge.admission.start_draining();
            let _ = stop_dialling.send(true);
            let deadline = Instant::now() + drain;
            // Live media streams, and outbound calls this instance holds the lease of (their
            // streams may be on another instance; the lease is renewed here until they end).
            let held = || holding.load(std::sync::atomic::Ordering::Relaxed);
            let busy = || bridge.admission.live() > 0 || held() > 0;
            let mut said = Instant::now();
            while busy() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if said.elapsed() >= Duration::from_secs(5) && busy() {
                    said = Instant::now();
                    info!(
                        live_streams = bridge.admission.live(),
                        held_outbound_calls = held(),
                        left_s = deadline.saturating_duration_since(Instant::now()).as_secs(),
                        "draining: waiting for live streams here and outbound calls this instance holds to end"
                    );
                }
            }
            if bridge.admission.live() > 0 {
                info!(live = bridge.admission.live(), "drain timeout: ending live calls");
                // Stored even with no call listening yet: one still connecting its model sees it.
                bridge.shutdown.send_replace(true);
                // Telnyx calls ended now hear the apology before their hang-up command.
                let deadline = Instant::now() + crate::providers::carrier::APOLOGY_WAIT + Duration::from_secs(2);
                while bridge.admission.live() > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = stop_tx.send(());
        });
        let limits = Limits {
            max_connections: self.config.max_connections,
            header_read_timeout: Duration::from_millis(self.config.header_read_timeout_ms),
        };
        let store = self.store.clone();
        crate::connections::serve(listener, router, limits, async move {
            let _ = stop_rx.await;
        })
        .await?;
        // The drain is over: the dialler, the deliverer and the analyst stop before the store closes under
        // them (each of their writes is a transaction of its own; one cut short rolls back).
        for task in [dialling_task, delivering_task, analysing_task] {
            task.abort();
            let _ = task.await;
        }
        // The WAL goes into the database file, so a copy of `voxbridge.db` alone is complete.
        match store.close().await {
            Ok(()) => info!("database checkpointed and closed"),
            Err(e) => tracing::warn!(error = %e, "cannot checkpoint the database at shutdown"),
        }
        Ok(())
    }

    /// Binds `127.0.0.1:0` and serves in the background (tests, embedding).
    pub async fn spawn_local(self) -> std::io::Result<(SocketAddr, Arc<Bridge>, Option<MockHandle>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let bridge = Arc::clone(&self.bridge);
        let mock = self.mock.clone();
        tokio::spawn(self.serve(listener, std::future::pending()));
        Ok((addr, bridge, mock))
    }
}

/// What an operator needs to see first: where carriers will reach us, what we store to, which
/// model and carriers answer, and who may use the API. (Signatures: `control::unsigned`.)
fn log_start_up(config: &Config, mock: bool, carriers: &Carriers) {
    let model = if mock {
        "built-in mock (no OPENAI_API_KEY)".to_string()
    } else {
        format!("{} at {}", config.realtime_model, config.realtime_url)
    };
    let configured = |p| if carriers.is_configured(p) { "configured" } else { "not configured" };
    let keys = crate::control::auth::parse_keys(config.api_keys.as_deref()).len();
    let api = if keys == 0 {
        "no VOXBRIDGE_API_KEYS: loopback only, no browsers".to_string()
    } else {
        format!("{keys} bearer key(s)")
    };
    info!(
        public_url = %config.public_url,
        twilio_voice_url = %config.public_http("/twilio/voice"),
        twilio_stream_url = %format!("{}/media/twilio", config.public_ws_base()),
        database = %redact_url(&config.database_url),
        instance = %config.instance(),
        audio_mode = ?config.audio_mode,
        model = %model,
        twilio = configured(crate::providers::carrier::Provider::Twilio),
        telnyx = configured(crate::providers::carrier::Provider::Telnyx),
        api = %api,
        "voxbridge configuration"
    );
}

async fn open_store(url: &str) -> Result<Store, ConfigError> {
    let hint = if url.starts_with("sqlite:") {
        "its directory must exist and be writable by this user"
    } else {
        "the PostgreSQL server must be reachable and the user allowed to create tables in that database"
    };
    Store::open(url).await.map_err(|e| ConfigError {
        variable: "VOXBRIDGE_DATABASE_URL",
        problem: format!("cannot open {}: {e} ({hint})", redact_url(url)),
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    match ShutdownSignals::install() {
        Ok(mut signals) => signals.recv().await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM/SIGINT");
            std::future::pending::<()>().await
        }
    }
}

/// SIGTERM and SIGINT, listened to from the moment this is made: a signal that arrives before
/// the first [`recv`](Self::recv) is kept (without this, one that arrived between start-up and
/// the drain task's first poll killed the process uncleanly).
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `VOXBRIDGE_RECORDINGS`: where recordings go, its directory made (`None`: off).
fn recorder(config: &Config) -> Result<Option<crate::recording::Recorder>, ConfigError> {
    let problem = |problem: String| ConfigError { variable: "VOXBRIDGE_RECORDINGS", problem };
    let Some(storage) =
        crate::recording::storage::Storage::open(&config.recordings(), &config.recordings_spool()).map_err(problem)?
    else {
        return Ok(None);
    };
    let dir = storage.spool_dir();
    std::fs::create_dir_all(dir).map_err(|e| problem(format!("cannot create {}: {e}", dir.display())))?;
    info!(recordings = storage.label(), "recording calls that ask for it");
    Ok(Some(crate::recording::Recorder { storage, wake: Default::default() }))
}

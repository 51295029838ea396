//! The shared application state every handler receives: settings, the room registry, the token
//! verifier, counters, and the shutdown signal with the tracker of live socket tasks.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Verifier;
use crate::config::{ConfigError, Settings};
use crate::room::Registry;
use crate::stats::Stats;

/// Cheap to clone: one `Arc`.
#[derive(Clone, Debug)]
pub struct App(Arc<AppInner>);

/// The state behind [`App`].
#[derive(Debug)]
pub struct AppInner {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Live rooms.
    pub registry: Registry,
    /// Socket token verifier.
    pub verifier: Verifier,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Socket tasks, awaited (with a bound) at shutdown.
    pub tracker: TaskTracker,
    /// The vendor façades' state.
    pub facades: crate::facade::Facades,
}

impl App {
    /// Builds the state from settings.
    pub fn new(settings: Settings) -> Result<Self, ConfigError> {
        let settings = Arc::new(settings);
        let stats = Arc::new(Stats::default());
        let verifier = Verifier::from_settings(&settings)?;
        Ok(Self(Arc::new(AppInner {
            facades: crate::facade::Facades::new(&settings)?,
            registry: Registry::new(settings.clone(), stats.clone()),
            settings,
            verifier,
            stats,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })))
    }
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

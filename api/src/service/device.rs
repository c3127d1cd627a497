//! `DeviceState`: what Fleet Desktop's routes (`crate::device`) keep between requests — the
//! ban of addresses presenting bad device tokens, and the organisation settings they show,
//! read at most once per [`SETTINGS_TTL`]. Here, apart from the routes, so `AppState` can hold
//! it without importing them.

use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use super::ratelimit::FailureBan;
use super::settings::SettingsService;
use crate::fleet::error::FleetError;

/// How long the organisation settings Desktop shows are served from memory before they are
/// read again (a change on any node shows within this).
const SETTINGS_TTL: Duration = Duration::from_secs(10);

/// What the device routes keep between requests: the bad-token ban and the settings cache.
pub struct DeviceState {
    pub bans: FailureBan,
    settings: Mutex<Option<(tokio::time::Instant, Value)>>,
}

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState {
            bans: FailureBan::fleet_device_default(),
            settings: Mutex::new(None),
        }
    }
}

impl DeviceState {
    /// The stored settings, read at most once per [`SETTINGS_TTL`].
    pub async fn settings(&self, service: &SettingsService) -> Result<Value, FleetError> {
        if let Some((at, settings)) = &*self.settings.lock()
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(settings.clone());
        }
        let settings = service.stored_settings().await?;
        *self.settings.lock() = Some((tokio::time::Instant::now(), settings.clone()));
        Ok(settings)
    }
}

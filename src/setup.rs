//! A config with what is derived from it once, at load or reload: the managed sets with their
//! owners and the owned table. Every loop turn reads these instead of recomputing them.

use crate::config::{Config, ConfigError};
use crate::managed::Managed;
use crate::owned::{self, OwnedError, OwnedPlan};
use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    pub config: Config,
    pub managed: Managed,
    /// The owned table this config asks for (`None`: no `nat:` and no `docker.publish`).
    pub owned: Option<OwnedPlan>,
}

#[derive(Debug)]
pub enum SetupError {
    Config(ConfigError),
    Owned(OwnedError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Config(e) => e.fmt(f),
            SetupError::Owned(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {}

impl Setup {
    pub fn new(config: Config) -> Result<Setup, SetupError> {
        let owned = owned::plan(&config).map_err(SetupError::Owned)?;
        let managed = Managed::new(&config, owned.as_ref().map(|o| o.sets.as_slice()).unwrap_or_default());
        Ok(Setup { config, managed, owned })
    }

    pub fn load(path: &Path) -> Result<Setup, SetupError> {
        Setup::new(Config::load(path).map_err(SetupError::Config)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Setup, SetupError> {
        Setup::new(Config::parse(path, text).map_err(SetupError::Config)?)
    }
}

//! What a run does: the command line with the quick or full defaults applied, and the budgets
//! each kind of step gets from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::load::Budget;

#[derive(Clone)]
pub struct Plan {
    pub quick: bool,
    /// Whether the services verify bearer tokens (`--auth`).
    pub auth: bool,
    pub scales: Vec<u64>,
    pub concurrency: Vec<usize>,
    pub scale_concurrency: usize,
    pub step: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub max_submits: u64,
    pub pipeline_samples: u64,
    pub connections: usize,
    pub relay_window: Duration,
    pub idle_watchers: usize,
    pub idle_concurrency: usize,
    pub idle_tps_window: Duration,
    /// Token verifications of the in-process measurement.
    pub verifications: u32,
    /// Where the service logs go (named in error messages).
    pub log_dir: PathBuf,
}

impl Plan {
    pub fn budget(&self) -> Budget {
        Budget {
            duration: self.step,
            max_requests: self.max_requests,
        }
    }

    pub fn warmup_budget(&self) -> Budget {
        Budget {
            duration: self.warmup,
            max_requests: self.max_requests,
        }
    }

    pub fn submit_budget(&self) -> Budget {
        Budget {
            duration: self.step,
            max_requests: self.max_submits,
        }
    }

    pub fn submit_warmup_budget(&self) -> Budget {
        Budget {
            duration: self.warmup,
            max_requests: (self.max_submits / 4).max(50),
        }
    }
}

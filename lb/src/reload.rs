//! The configuration reload (issue 11): SIGHUP, or `cluamgr --reload`. aliasd re-reads its
//! configuration file with the same loader as at start ([`Config::load`]: parse, validate, the
//! files it names), refuses a file whose restart-only keys ([`crate::config::RESTART_ONLY`])
//! changed, and hands the live part to the control plane
//! ([`clua_ctl::plane::ControlPlane::reload`]), which merges, validates and publishes it as one
//! snapshot. All or nothing: any error leaves the configuration in force untouched, and the
//! reply (and the log line) says why, naming the file and its line or field.

use std::path::Path;

use clua_ctl::apply::ControlState;
use clua_ctl::plane::{ControlPlane, Effects};
use clua_ctl::protocol::Reply;

use crate::config::Config;

/// The live part of a configuration: what the control plane holds.
pub fn live_state(c: &Config) -> ControlState {
    ControlState {
        cluster: c.cluster.clone(),
        services_file: c.control.services_file.clone(),
        resvok: c.resvok,
    }
}

/// Checks `new` against the configuration aliasd started with and applies it, or says why not.
pub fn apply(
    started: &Config,
    new: Result<Config, String>,
    plane: &mut ControlPlane,
    now_ms: u64,
) -> (Reply, Effects) {
    let refused = |output: String| (Reply { ok: false, output }, Effects::default());
    let new = match new {
        Ok(c) => c,
        Err(e) => return refused(format!("reload refused, nothing changed:\n{e}")),
    };
    let restart = started.restart_only_changes(&new);
    if !restart.is_empty() {
        return refused(format!(
            "reload refused, nothing changed: restart-only keys changed: {}; restart aliasd to apply them (restart-only: {})",
            restart.join(", "),
            crate::config::RESTART_ONLY
        ));
    }
    let (reply, fx) = plane.reload(live_state(&new), now_ms);
    if reply.ok {
        // Static members' probes (issue 10) follow the file too.
        plane.reconfigure_health(&new.health);
    }
    (reply, fx)
}

/// Reads `path` and [`apply`]s it.
pub fn reload_file(
    path: &Path,
    started: &Config,
    plane: &mut ControlPlane,
    now_ms: u64,
) -> (Reply, Effects) {
    let new = Config::load(path).map_err(|e| e.to_string());
    apply(started, new, plane, now_ms)
}

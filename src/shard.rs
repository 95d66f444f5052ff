//! Splitting the environments a change touches over the jobs of a CI matrix.
//!
//! Each environment is checked (and applied) whole by one job, so shards hold whole
//! environments, balanced by how much each costs to render and plan. That cost is estimated
//! without rendering — a change to `cairn.yaml` touches every environment, and rendering them all
//! to decide how to split the work would be the work itself — as the number of documents in the
//! environment's layers (a line starting with `kind:`, in its `.yaml`/`.yml` files), each layer
//! read once however many environments share it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::repo::Snapshot;

/// GitHub Actions runs at most 256 jobs per matrix; no CI here needs more.
pub const MAX_JOBS: usize = 256;

/// One job's share of the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// 1, 2, … in order of their first environment's position in `cairn.yaml`.
    pub shard: usize,
    pub environments: Vec<String>,
    /// The estimated documents its environments render (see the module's comment).
    pub objects: usize,
    /// The environments as `--env A --env B`, ready for `check` and `apply --plan`.
    pub env_args: String,
}

/// A `--max-jobs` within 1..=256.
pub fn check_max_jobs(max_jobs: usize) -> Result<usize> {
    if (1..=MAX_JOBS).contains(&max_jobs) {
        Ok(max_jobs)
    } else {
        Err(Error::Usage {
            message: format!("--max-jobs {max_jobs}: give 1 to {MAX_JOBS} (GitHub's limit of jobs in a matrix)"),
        })
    }
}

/// Above this many environments, every YAML file of the snapshot is read in one walk instead of
/// each layer looked up by path: a lookup scans the directories above the layer, and a directory
/// of thousands of environments would be scanned once per environment.
const ONE_WALK: usize = 64;

/// The estimated documents of each environment named, in the order given.
pub fn estimate(snapshot: &Snapshot, config: &Config, envs: &[&str]) -> Result<Vec<(String, usize)>> {
    let everything = if envs.len() > ONE_WALK { read_layer_roots(snapshot, config, envs) } else { None };
    let mut per_layer: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for name in envs {
        let env = config.environment(name)?;
        let mut total = 0;
        // A chart from a chart repository has nothing in the repository to count; its documents
        // are not known before helm runs.
        for layer in env.layers.iter().filter(|l| !l.is_remote_chart()) {
            if let Some(n) = per_layer.get(&layer.path) {
                total += n;
                continue;
            }
            let n = match &everything {
                Some(files) => under(files, &layer.path),
                None => {
                    let files = snapshot.read_under(&layer.path, is_yaml)?;
                    let files = if files.is_empty() {
                        // A layer that is a single file.
                        snapshot.read(&layer.path)?.map(|bytes| vec![(layer.path.clone(), bytes)]).unwrap_or_default()
                    } else {
                        files
                    };
                    files.iter().map(|(_, bytes)| documents(bytes)).sum()
                }
            };
            per_layer.insert(layer.path.clone(), n);
            total += n;
        }
        out.push((name.to_string(), total));
    }
    Ok(out)
}

/// The documents of every YAML file under the top directories of the environments' layers
/// (`environments/`, `base/`), each read once; `None` where that cannot be done (a committed
/// symbolic link under one of them, say), for the caller to look each layer up instead.
fn read_layer_roots(snapshot: &Snapshot, config: &Config, envs: &[&str]) -> Option<BTreeMap<String, usize>> {
    let mut roots: Vec<&str> = Vec::new();
    for name in envs {
        for layer in config.environment(name).ok()?.layers.iter().filter(|l| !l.is_remote_chart()) {
            let root = layer.path.trim_start_matches("./").split('/').next().unwrap_or_default();
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
    }
    let mut files = BTreeMap::new();
    for root in roots {
        match snapshot.summarise_under(root, is_yaml, documents) {
            Ok(counted) => files.extend(counted),
            Err(_) => return None,
        }
        // A layer that is a single file at the top.
        if let Ok(Some(bytes)) = snapshot.read(root) {
            files.insert(root.to_string(), documents(&bytes));
        }
    }
    Some(files)
}

/// The documents of the file `layer`, or of the files under the directory `layer`.
fn under(files: &BTreeMap<String, usize>, layer: &str) -> usize {
    let layer = layer.trim_end_matches('/');
    if let Some(&n) = files.get(layer) {
        return n;
    }
    let prefix = format!("{layer}/");
    files.range(prefix.clone()..).take_while(|(path, _)| path.starts_with(&prefix)).map(|(_, n)| n).sum()
}

fn is_yaml(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with("kustomization.")
}

/// Top-level `kind:` lines: one per Kubernetes-style document.
fn documents(bytes: &[u8]) -> usize {
    let starts = bytes.starts_with(b"kind:") as usize;
    starts + bytes.windows(6).filter(|w| w == b"\nkind:").count()
}

/// At most `max_jobs` shards of whole environments, balanced by estimated documents: the
/// costliest environment first, each to the lightest shard so far (ties to the earlier shard and
/// the earlier environment), so the same change always gives the same matrix.
pub fn split(estimates: &[(String, usize)], max_jobs: usize) -> Vec<Shard> {
    let count = estimates.len().min(max_jobs.max(1));
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&a, &b| estimates[b].1.cmp(&estimates[a].1).then(a.cmp(&b)));
    let mut bins: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); count];
    for i in order {
        let lightest =
            (0..count).min_by_key(|&b| (bins[b].0, b)).expect("at least one shard when there are environments");
        // An environment with no documents still costs a job some work.
        bins[lightest].0 += estimates[i].1.max(1);
        bins[lightest].1.push(i);
    }
    let mut bins: Vec<(usize, Vec<usize>)> = bins
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            (members.iter().map(|&i| estimates[i].1).sum(), members)
        })
        .collect();
    bins.sort_by_key(|(_, members)| members.first().copied());
    bins.into_iter()
        .enumerate()
        .map(|(k, (objects, members))| {
            let environments: Vec<String> = members.iter().map(|&i| estimates[i].0.clone()).collect();
            let env_args = environments.iter().map(|e| format!("--env {e}")).collect::<Vec<_>>().join(" ");
            Shard { shard: k + 1, environments, objects, env_args }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimates(sizes: &[usize]) -> Vec<(String, usize)> {
        sizes.iter().enumerate().map(|(i, &n)| (format!("env-{i:02}"), n)).collect()
    }

    #[test]
    fn shards_hold_whole_environments_balanced_and_capped() {
        let shards = split(&estimates(&[50, 10, 10, 10, 10, 10, 40]), 3);
        assert_eq!(shards.len(), 3);
        let all: Vec<&String> = shards.iter().flat_map(|s| &s.environments).collect();
        assert_eq!(all.len(), 7, "every environment in exactly one shard");
        let loads: Vec<usize> = shards.iter().map(|s| s.objects).collect();
        assert_eq!(loads.iter().sum::<usize>(), 140);
        assert!(loads.iter().max().expect("shards") - loads.iter().min().expect("shards") <= 10, "{loads:?}");
        assert_eq!(shards[0].environments[0], "env-00");
        assert_eq!(shards[0].env_args, "--env env-00");
    }

    #[test]
    fn fewer_environments_than_jobs_give_one_shard_each() {
        let shards = split(&estimates(&[3, 0]), 256);
        assert_eq!(shards.iter().map(|s| s.environments.len()).collect::<Vec<_>>(), [1, 1]);
        assert!(split(&[], 4).is_empty());
    }

    #[test]
    fn documents_are_counted_by_top_level_kinds() {
        assert_eq!(documents(b"kind: A\n---\nkind: B\nspec:\n  kind: nested\n"), 2);
        assert_eq!(documents(b"# none\n"), 0);
    }

    #[test]
    fn a_layer_counts_its_own_files_only() {
        let files: BTreeMap<String, usize> =
            [("base/a.yaml", 2), ("base/sub/b.yaml", 3), ("base-other/c.yaml", 5), ("one.yaml", 1)]
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect();
        assert_eq!(under(&files, "base"), 5);
        assert_eq!(under(&files, "base/"), 5);
        assert_eq!(under(&files, "one.yaml"), 1);
        assert_eq!(under(&files, "missing"), 0);
    }

    #[test]
    fn max_jobs_is_bounded() {
        assert!(check_max_jobs(0).is_err());
        assert!(check_max_jobs(257).is_err());
        assert_eq!(check_max_jobs(256).ok(), Some(256));
    }
}

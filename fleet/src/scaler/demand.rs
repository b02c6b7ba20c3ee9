//! Demand: which pool each waiting queue item needs, from its `why` text (and the task's
//! exported label expression as a fallback).

use crate::config::Config;
use crate::jenkins::label::{self, Expr};
use crate::jenkins::why::{classify, mentioned_names, Why};
use crate::jenkins::{Computer, NodeTag, QueueItem};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolDemand {
    pub executors: u32,
    pub oldest_wait_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemandTable {
    pub pools: BTreeMap<String, PoolDemand>,
    /// Reason → count, for items nectr does not launch for.
    pub not_launchable: BTreeMap<String, u32>,
    /// Every name a waiting item's `why` mentions (node names and labels): a node named here
    /// is never retired.
    pub mentioned: BTreeSet<String>,
}

/// Where one item goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    Pool(String),
    /// Not demand for new capacity (quiet period, blocked, pending, not buildable).
    NotDemand,
    /// Demand nectr will not launch for, with the reason.
    NotLaunchable(String),
}

struct Resolver<'a> {
    cfg: &'a Config,
    /// Node name → Some(pool) if ours, None if foreign.
    nodes: BTreeMap<&'a str, Option<String>>,
    cache: BTreeMap<String, Attribution>,
}

impl<'a> Resolver<'a> {
    fn new(cfg: &'a Config, computers: &'a [Computer]) -> Self {
        let mut nodes = BTreeMap::new();
        for c in computers {
            let ours = c
                .description
                .as_deref()
                .and_then(NodeTag::parse)
                .filter(|t| t.fleet == cfg.fleet_id)
                .map(|t| t.pool);
            nodes.insert(c.name.as_str(), ours);
        }
        Resolver {
            cfg,
            nodes,
            cache: BTreeMap::new(),
        }
    }

    fn pool_for_expr(&self, e: &Expr) -> Option<String> {
        self.cfg
            .pools
            .iter()
            .find(|p| p.max_instances > 0 && e.matches(&p.labels))
            .map(|p| p.name.clone())
    }

    /// A label text from a `why` (canonical form) or a node name.
    fn target(&mut self, x: &str) -> Attribution {
        if let Some(a) = self.cache.get(x) {
            return a.clone();
        }
        let a = match self.nodes.get(x) {
            Some(Some(pool)) => {
                if self.cfg.pool(pool).is_some() {
                    Attribution::Pool(pool.clone())
                } else {
                    Attribution::NotLaunchable(format!("node of removed pool {pool}"))
                }
            }
            Some(None) => Attribution::NotLaunchable("foreign node".into()),
            None => self.expr(x),
        };
        self.cache.insert(x.to_string(), a.clone());
        a
    }

    fn expr(&self, x: &str) -> Attribution {
        match label::parse(x) {
            Ok(e) => match self.pool_for_expr(&e) {
                Some(p) => Attribution::Pool(p),
                None => {
                    Attribution::NotLaunchable(format!("no pool matches label \u{2018}{x}\u{2019}"))
                }
            },
            Err(_) => Attribution::NotLaunchable(format!(
                "unparseable label \u{2018}{}\u{2019}",
                truncate(x)
            )),
        }
    }

    fn fallback(&mut self, item: &QueueItem, otherwise: &str) -> Attribution {
        match item.task_label.as_deref() {
            Some(l) => self.target(l.trim()),
            None => Attribution::NotLaunchable(otherwise.to_string()),
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        let mut t: String = s.chars().take(60).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// Attribute every waiting item. Each buildable, non-pending item is one executor of demand.
pub fn attribute(
    queue: &[QueueItem],
    computers: &[Computer],
    cfg: &Config,
    now: u64,
) -> DemandTable {
    let mut r = Resolver::new(cfg, computers);
    let mut t = DemandTable::default();
    for item in queue {
        let why = item.why.as_deref().map(classify);
        if let Some(w) = &why {
            for n in mentioned_names(w) {
                t.mentioned.insert(n.to_string());
            }
        }
        let a = if !item.buildable || item.blocked || item.pending {
            Attribution::NotDemand
        } else {
            match why {
                None => r.fallback(item, "no why text"),
                Some(Why::WaitingOn(x))
                | Some(Why::NoNodesWithLabel(x))
                | Some(Why::AllNodesOffline(x))
                | Some(Why::NodeOffline(x)) => r.target(&x),
                Some(Why::Composite { labels, .. }) => {
                    if labels.len() == 1 {
                        let l = labels.into_iter().next().unwrap_or_default();
                        r.target(&l)
                    } else {
                        r.fallback(item, "composite refusal without a label")
                    }
                }
                Some(Why::Unlabeled) => {
                    r.fallback(item, "no label (nectr nodes only take labelled work)")
                }
                Some(Why::NotCapacity(_)) => Attribution::NotDemand,
                Some(Why::Unknown) => r.fallback(item, "unrecognised why text"),
            }
        };
        match a {
            Attribution::Pool(p) => {
                let d = t.pools.entry(p).or_default();
                d.executors += 1;
                let since = item
                    .buildable_start_ms
                    .or(item.in_queue_since_ms)
                    .unwrap_or(now);
                d.oldest_wait_ms = d.oldest_wait_ms.max(now.saturating_sub(since));
            }
            Attribution::NotDemand => {}
            Attribution::NotLaunchable(reason) => *t.not_launchable.entry(reason).or_insert(0) += 1,
        }
    }
    t
}

//! Leader lease for running several replicas: exactly one acts.
//!
//! The lease is one small JSON object in S3, `{"holder","generation","expires_ms"}`, written
//! only with conditional PUTs (`If-None-Match: *` to create, `If-Match: ETAG` to renew or take
//! over), so two replicas can never both win the same round. The generation is the fencing
//! token: it grows on every change of holder.
//!
//! A paused ex-leader cannot act: the holder trusts its lease only until a *local monotonic*
//! deadline, taken before the renewing write was sent, of `ttl - margin`; every mutating step
//! checks [`Lease::may_act`] first. Other replicas take over only after the wall-clock expiry
//! plus `margin`, so with clock skew below `margin` the two windows never overlap.

use crate::cloud::s3::{PutCondition, PutOutcome, S3Object};
use crate::cloud::CloudError;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub generation: u64,
    pub expires_ms: u64,
}

/// Where the lease lives. [`S3Object`] in production; tests may use anything.
pub trait LeaseStore: Send + Sync {
    fn read(&self) -> Result<Option<(Vec<u8>, String)>, CloudError>;
    fn write(&self, body: &[u8], cond: &PutCondition) -> Result<PutOutcome, CloudError>;
}

impl LeaseStore for S3Object {
    fn read(&self) -> Result<Option<(Vec<u8>, String)>, CloudError> {
        self.get()
    }
    fn write(&self, body: &[u8], cond: &PutCondition) -> Result<PutOutcome, CloudError> {
        self.put(body, cond)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Leader {
        generation: u64,
    },
    Standby {
        holder: String,
        expires_ms: u64,
    },
    /// The store could not be read or written: act as standby.
    Unknown {
        error: String,
    },
}

pub struct Lease {
    pub id: String,
    ttl_ms: u64,
    margin_ms: u64,
    store: Box<dyn LeaseStore>,
    valid_until: Option<Instant>,
    generation: u64,
}

impl Lease {
    /// `id` must be unique per replica (e.g. host name plus random suffix).
    pub fn new(id: String, ttl_ms: u64, store: Box<dyn LeaseStore>) -> Lease {
        Lease {
            id,
            ttl_ms,
            margin_ms: (ttl_ms / 4).max(1),
            store,
            valid_until: None,
            generation: 0,
        }
    }

    /// True while this replica holds an unexpired lease by its own monotonic clock.
    pub fn may_act(&self) -> bool {
        self.valid_until.is_some_and(|t| Instant::now() < t)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn write(&mut self, rec: &LeaseRecord, cond: PutCondition) -> Result<bool, CloudError> {
        let body = serde_json::to_vec(rec).unwrap_or_default();
        let sent = Instant::now();
        match self.store.write(&body, &cond)? {
            PutOutcome::Written { .. } => {
                let local = self.ttl_ms.saturating_sub(self.margin_ms);
                self.valid_until = Some(sent + Duration::from_millis(local));
                self.generation = rec.generation;
                Ok(true)
            }
            PutOutcome::Conflict => {
                self.valid_until = None;
                Ok(false)
            }
        }
    }

    /// Give the lease up (on shutdown): if this replica still holds it, rewrite the record
    /// as expired (`expires_ms: 0`, same generation), conditional on its ETag, so a standby
    /// takes over at its next poll instead of after the TTL. `Ok(false)` when it was not
    /// ours (nothing written).
    pub fn release(&mut self) -> Result<bool, CloudError> {
        if self.generation == 0 {
            return Ok(false);
        }
        let Some((body, etag)) = self.store.read()? else {
            return Ok(false);
        };
        let cur: Option<LeaseRecord> = serde_json::from_slice(&body).ok();
        match cur {
            Some(cur) if cur.holder == self.id && cur.generation == self.generation => {
                let rec = LeaseRecord {
                    holder: self.id.clone(),
                    generation: self.generation,
                    expires_ms: 0,
                };
                let body = serde_json::to_vec(&rec).unwrap_or_default();
                // Stop acting first: whatever the answer, this replica is done.
                self.valid_until = None;
                Ok(matches!(
                    self.store.write(&body, &PutCondition::Matches(etag))?,
                    PutOutcome::Written { .. }
                ))
            }
            _ => Ok(false),
        }
    }

    /// One round: acquire, renew or observe. `now_ms` is wall-clock time for the record.
    pub fn tick(&mut self, now_ms: u64) -> Role {
        match self.try_tick(now_ms) {
            Ok(r) => r,
            Err(e) => {
                // Keep a still-valid lease until its local deadline; never extend it.
                Role::Unknown {
                    error: e.to_string(),
                }
            }
        }
    }

    fn try_tick(&mut self, now_ms: u64) -> Result<Role, CloudError> {
        let mine = |g: u64, id: &str, ttl: u64| LeaseRecord {
            holder: id.to_string(),
            generation: g,
            expires_ms: now_ms + ttl,
        };
        match self.store.read()? {
            None => {
                let rec = mine(1, &self.id, self.ttl_ms);
                if self.write(&rec, PutCondition::Absent)? {
                    return Ok(Role::Leader {
                        generation: rec.generation,
                    });
                }
                Ok(Role::Standby {
                    holder: "(unknown: lost the race)".into(),
                    expires_ms: 0,
                })
            }
            Some((body, etag)) => {
                let cur: LeaseRecord = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(_) => LeaseRecord {
                        holder: String::new(),
                        generation: 0,
                        expires_ms: 0,
                    },
                };
                if cur.holder == self.id && cur.generation == self.generation && self.generation > 0
                {
                    let rec = mine(cur.generation, &self.id, self.ttl_ms);
                    if self.write(&rec, PutCondition::Matches(etag))? {
                        return Ok(Role::Leader {
                            generation: rec.generation,
                        });
                    }
                    return Ok(Role::Standby {
                        holder: "(lost the lease)".into(),
                        expires_ms: 0,
                    });
                }
                if cur.expires_ms + self.margin_ms < now_ms {
                    let rec = mine(cur.generation + 1, &self.id, self.ttl_ms);
                    if self.write(&rec, PutCondition::Matches(etag))? {
                        return Ok(Role::Leader {
                            generation: rec.generation,
                        });
                    }
                    return Ok(Role::Standby {
                        holder: "(lost the race)".into(),
                        expires_ms: 0,
                    });
                }
                self.valid_until = None;
                Ok(Role::Standby {
                    holder: cur.holder,
                    expires_ms: cur.expires_ms,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// (body, version) of the one object.
    type Slot = Option<(Vec<u8>, u64)>;

    /// An in-memory store with S3's conditional semantics.
    #[derive(Default, Clone)]
    struct Mem(Arc<Mutex<Slot>>);

    impl LeaseStore for Mem {
        fn read(&self) -> Result<Option<(Vec<u8>, String)>, CloudError> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .map(|(b, v)| (b, format!("\"{v}\""))))
        }
        fn write(&self, body: &[u8], cond: &PutCondition) -> Result<PutOutcome, CloudError> {
            let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let ok = match (cond, &*g) {
                (PutCondition::Absent, None) => true,
                (PutCondition::Matches(e), Some((_, v))) => *e == format!("\"{v}\""),
                _ => false,
            };
            if !ok {
                return Ok(PutOutcome::Conflict);
            }
            let v = g.as_ref().map_or(1, |x| x.1 + 1);
            *g = Some((body.to_vec(), v));
            Ok(PutOutcome::Written {
                etag: format!("\"{v}\""),
            })
        }
    }

    #[test]
    fn one_leader_renewal_and_takeover_after_expiry() {
        let store = Mem::default();
        let mut a = Lease::new("a".into(), 1000, Box::new(store.clone()));
        let mut b = Lease::new("b".into(), 1000, Box::new(store.clone()));
        assert_eq!(a.tick(10_000), Role::Leader { generation: 1 });
        assert!(a.may_act());
        assert!(matches!(b.tick(10_100), Role::Standby { ref holder, .. } if holder == "a"));
        assert!(!b.may_act());
        assert_eq!(a.tick(10_500), Role::Leader { generation: 1 });
        // `a` stops renewing; `b` must wait for expiry (11_500) plus the margin (250).
        assert!(matches!(b.tick(11_700), Role::Standby { .. }));
        assert_eq!(b.tick(11_800), Role::Leader { generation: 2 });
        // `a` comes back: it sees `b` and stands by; its own deadline has passed too.
        std::thread::sleep(Duration::from_millis(800));
        assert!(!a.may_act(), "a paused ex-leader cannot act");
        assert!(matches!(a.tick(11_900), Role::Standby { ref holder, .. } if holder == "b"));
    }

    #[test]
    fn local_deadline_is_shorter_than_the_ttl() {
        let mut a = Lease::new("a".into(), 200, Box::new(Mem::default()));
        assert!(matches!(a.tick(0), Role::Leader { .. }));
        assert!(a.may_act());
        std::thread::sleep(Duration::from_millis(160));
        assert!(!a.may_act(), "ttl 200 ms - margin 50 ms");
    }
}

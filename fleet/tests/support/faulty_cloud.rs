//! A CloudProvider wrapper around the EC2 provider (talking to moto) that injects the errors
//! moto cannot produce: capacity errors and throttling.

use nectr_fleet::cloud::{
    CloudError, CloudErrorKind, CloudProvider, Instance, LaunchSpec, Offering,
};
use std::collections::BTreeSet;
use std::sync::Mutex;

pub struct FaultyCloud<C: CloudProvider> {
    pub inner: C,
    /// Offerings that answer InsufficientInstanceCapacity.
    pub no_capacity: Mutex<BTreeSet<Offering>>,
    /// The next N describes answer RequestLimitExceeded.
    pub throttle_describes: Mutex<u32>,
    /// Every launch attempt: (offering, client token, ok).
    pub attempts: Mutex<Vec<(Offering, String, bool)>>,
}

impl<C: CloudProvider> FaultyCloud<C> {
    pub fn new(inner: C) -> Self {
        FaultyCloud {
            inner,
            no_capacity: Mutex::new(BTreeSet::new()),
            throttle_describes: Mutex::new(0),
            attempts: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: CloudProvider> CloudProvider for FaultyCloud<C> {
    fn describe_owned(&self, fleet_id: &str) -> Result<Vec<Instance>, CloudError> {
        {
            let mut n = lock(&self.throttle_describes);
            if *n > 0 {
                *n -= 1;
                return Err(CloudError {
                    kind: CloudErrorKind::Throttled,
                    code: "RequestLimitExceeded".into(),
                    message: "Request limit exceeded.".into(),
                });
            }
        }
        self.inner.describe_owned(fleet_id)
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<String, CloudError> {
        if lock(&self.no_capacity).contains(&spec.offering) {
            lock(&self.attempts).push((spec.offering.clone(), spec.client_token.clone(), false));
            return Err(CloudError {
                kind: CloudErrorKind::Capacity,
                code: "InsufficientInstanceCapacity".into(),
                message: format!(
                    "We currently do not have sufficient {} capacity",
                    spec.offering.instance_type
                ),
            });
        }
        let r = self.inner.launch(spec);
        lock(&self.attempts).push((spec.offering.clone(), spec.client_token.clone(), r.is_ok()));
        r
    }

    fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        self.inner.terminate(ids)
    }

    fn newest_image(&self, k: &str, v: &str) -> Result<String, CloudError> {
        self.inner.newest_image(k, v)
    }
}

//! The bundled EC2 on-demand price table and the cost arithmetic shared by the service (the
//! dollar cap, per-job cost attribution) and the simulator.
//!
//! **Where the figures come from.** AWS's public on-demand rate card for Linux, shared
//! tenancy (the "Amazon EC2 On-Demand Pricing" page / the `AmazonEC2` offer file of the AWS
//! Price List API), as recorded for this table in December 2026 from the rates AWS has
//! published unchanged since these families launched. They were not re-fetched from the live
//! price list on the build machine (it has no internet access); the c5 rates in us-east-1 match
//! the on-demand column of the example table in AWS's Auto Scaling user guide (a test below),
//! the rest are unchecked against a second source. Check a figure with
//! `aws pricing get-products --service-code AmazonEC2 --region us-east-1 --filters
//! Type=TERM_MATCH,Field=instanceType,Value=c6i.large Type=TERM_MATCH,Field=location,Value="US
//! East (N. Virginia)" Type=TERM_MATCH,Field=operatingSystem,Value=Linux
//! Type=TERM_MATCH,Field=tenancy,Value=Shared Type=TERM_MATCH,Field=preInstalledSw,Value=NA
//! Type=TERM_MATCH,Field=capacitystatus,Value=Used` and override it per pool with
//! `instance_types = [{ type = "c6i.large", price = 0.085 }]` when it differs.
//!
//! Within each of these families AWS prices sizes linearly in vCPUs (an `xlarge` costs twice
//! a `large`, a `9xlarge` eighteen times), so the table stores the `large` rate per family and
//! region and the sizes each family offers.
//!
//! **Spot** is priced at an assumption, not read from the market: `on-demand × (1 −
//! spot_discount)` with the pool's `spot_discount` (default [`DEFAULT_SPOT_DISCOUNT`], the
//! typical 60 % saving AWS advertises for these families; real spot prices move).

/// Regions the table covers.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
];

/// Default assumed spot saving: spot costs 40 % of on-demand.
pub const DEFAULT_SPOT_DISCOUNT: f64 = 0.6;

/// EC2 bills Linux instances per second with a 60 s minimum per start.
pub const MIN_BILLED_MS: u64 = 60_000;

/// (family, sizes offered) — metal sizes left out.
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "c5",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge",
        ],
    ),
    (
        "c6i",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "32xlarge",
        ],
    ),
    (
        "c7i",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "48xlarge",
        ],
    ),
    (
        "m5",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
        ],
    ),
    (
        "m6i",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "32xlarge",
        ],
    ),
    (
        "m7i",
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "48xlarge",
        ],
    ),
];

/// Dollars per hour of the `large` size: (region, family, price).
const LARGE: &[(&str, &str, f64)] = &[
    ("us-east-1", "c5", 0.085),
    ("us-east-1", "c6i", 0.085),
    ("us-east-1", "c7i", 0.08925),
    ("us-east-1", "m5", 0.096),
    ("us-east-1", "m6i", 0.096),
    ("us-east-1", "m7i", 0.1008),
    ("us-east-2", "c5", 0.085),
    ("us-east-2", "c6i", 0.085),
    ("us-east-2", "c7i", 0.08925),
    ("us-east-2", "m5", 0.096),
    ("us-east-2", "m6i", 0.096),
    ("us-east-2", "m7i", 0.1008),
    ("us-west-2", "c5", 0.085),
    ("us-west-2", "c6i", 0.085),
    ("us-west-2", "c7i", 0.08925),
    ("us-west-2", "m5", 0.096),
    ("us-west-2", "m6i", 0.096),
    ("us-west-2", "m7i", 0.1008),
    ("eu-west-1", "c5", 0.096),
    ("eu-west-1", "c6i", 0.096),
    ("eu-west-1", "c7i", 0.1008),
    ("eu-west-1", "m5", 0.107),
    ("eu-west-1", "m6i", 0.107),
    ("eu-west-1", "m7i", 0.11235),
    ("eu-central-1", "c5", 0.097),
    ("eu-central-1", "c6i", 0.097),
    ("eu-central-1", "c7i", 0.10185),
    ("eu-central-1", "m5", 0.115),
    ("eu-central-1", "m6i", 0.115),
    ("eu-central-1", "m7i", 0.12075),
];

/// How many `large` units a size is (`large` = 1, `xlarge` = 2, `Nxlarge` = 2N).
fn size_units(size: &str) -> Option<f64> {
    match size {
        "large" => Some(1.0),
        "xlarge" => Some(2.0),
        s => {
            let n: u32 = s.strip_suffix("xlarge")?.parse().ok()?;
            (n > 0).then_some(2.0 * n as f64)
        }
    }
}

/// The bundled on-demand Linux price of `instance_type` in `region`, dollars per hour; `None`
/// when the table does not cover the pair (then write the price in the config).
pub fn on_demand(region: &str, instance_type: &str) -> Option<f64> {
    let (family, size) = instance_type.split_once('.')?;
    let (_, sizes) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    if !sizes.contains(&size) {
        return None;
    }
    let large = LARGE
        .iter()
        .find(|(r, f, _)| *r == region && *f == family)?
        .2;
    // Round to the table's precision (AWS quotes up to 5 decimals).
    Some((large * size_units(size)? * 100_000.0).round() / 100_000.0)
}

/// Every (instance type, price) the table has for `region`, for `--help` texts and tests.
pub fn table(region: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (family, sizes) in FAMILIES {
        for size in *sizes {
            let t = format!("{family}.{size}");
            if let Some(p) = on_demand(region, &t) {
                out.push((t, p));
            }
        }
    }
    out
}

/// Price per hour of one instance given its on-demand price: spot at the assumed discount.
pub fn hourly(on_demand_price: f64, spot: bool, spot_discount: f64) -> f64 {
    if spot {
        on_demand_price * (1.0 - spot_discount)
    } else {
        on_demand_price
    }
}

/// Billed milliseconds for an instance that ran `ran_ms`: per second, rounded up, at least
/// 60 s.
pub fn billed_ms(ran_ms: u64) -> u64 {
    ran_ms
        .div_ceil(1000)
        .saturating_mul(1000)
        .max(MIN_BILLED_MS)
}

/// Dollars for `ms` milliseconds at `per_hour`.
pub fn dollars(ms: u64, per_hour: f64) -> f64 {
    ms as f64 / 3_600_000.0 * per_hour
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_linearly_from_the_large_rate() {
        assert_eq!(on_demand("us-east-1", "c5.large"), Some(0.085));
        assert_eq!(on_demand("us-east-1", "c5.9xlarge"), Some(1.53));
        assert_eq!(on_demand("us-east-1", "c6i.32xlarge"), Some(5.44));
        assert_eq!(on_demand("us-east-1", "m5.xlarge"), Some(0.192));
        assert_eq!(on_demand("us-east-1", "c7i.48xlarge"), Some(8.568));
        assert_eq!(on_demand("eu-central-1", "m6i.2xlarge"), Some(0.46));
    }

    /// The on-demand column of the example table in AWS's Auto Scaling user guide
    /// ("Spot price per unit hour example", US East (N. Virginia)): an independent check of
    /// the c5 row of the table above.
    #[test]
    fn c5_matches_the_rates_in_the_aws_auto_scaling_guide() {
        for (t, want) in [
            ("c5.2xlarge", 0.34),
            ("c5.4xlarge", 0.68),
            ("c5.12xlarge", 2.04),
            ("c5.18xlarge", 3.06),
            ("c5.24xlarge", 4.08),
        ] {
            let got = on_demand("us-east-1", t).unwrap_or_else(|| panic!("no price for {t}"));
            assert!((got - want).abs() < 1e-9, "{t}: {got} vs {want}");
        }
    }

    #[test]
    fn unknown_types_regions_and_sizes_have_no_price() {
        assert_eq!(
            on_demand("us-east-1", "c5.8xlarge"),
            None,
            "c5 has no 8xlarge"
        );
        assert_eq!(on_demand("us-east-1", "g5.xlarge"), None);
        assert_eq!(on_demand("ap-south-1", "c5.large"), None);
        assert_eq!(on_demand("us-east-1", "c5"), None);
        assert_eq!(on_demand("us-east-1", "c5.metal"), None);
    }

    #[test]
    fn every_region_prices_every_family() {
        for r in REGIONS {
            assert_eq!(table(r).len(), 52, "{r}");
        }
    }

    #[test]
    fn billing_is_per_second_with_a_minute_minimum() {
        assert_eq!(billed_ms(0), 60_000);
        assert_eq!(billed_ms(59_999), 60_000);
        assert_eq!(billed_ms(60_001), 61_000);
        assert_eq!(billed_ms(3_600_000), 3_600_000);
        assert!((dollars(3_600_000, 1.53) - 1.53).abs() < 1e-12);
        assert!((hourly(1.0, true, 0.6) - 0.4).abs() < 1e-12);
        assert_eq!(hourly(1.0, false, 0.6), 1.0);
    }
}

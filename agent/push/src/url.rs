//! Bucket addressing and the URLs an object is reachable at.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters kept as they are in a key's URL path: RFC 3986's unreserved ones and `/`.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// True if `bucket` can be a host name label for virtual-hosted addressing over https: 3–63
/// of lowercase letters, digits and `-`, starting and ending with a letter or digit. Names
/// with `_` (the legacy `nectr_deploy`), upper case or dots (no TLS wildcard covers them)
/// need path-style addressing.
pub fn virtual_hostable(bucket: &str) -> bool {
    let b = bucket.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `key` percent-encoded for a URL path.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY).to_string()
}

/// The https URL of an object.
pub fn object_url(
    endpoint: Option<&str>,
    region: &str,
    bucket: &str,
    key: &str,
    path_style: bool,
) -> String {
    let key = encode_key(key);
    match endpoint {
        Some(e) => {
            let e = e.trim_end_matches('/');
            if path_style {
                format!("{e}/{bucket}/{key}")
            } else {
                match e.split_once("://") {
                    Some((scheme, host)) => format!("{scheme}://{bucket}.{host}/{key}"),
                    None => format!("{bucket}.{e}/{key}"),
                }
            }
        }
        None if path_style => format!("https://s3.{region}.amazonaws.com/{bucket}/{key}"),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostable_names() {
        assert!(virtual_hostable("nectr-deploy"));
        assert!(virtual_hostable("abc"));
        assert!(!virtual_hostable("nectr_deploy"));
        assert!(!virtual_hostable("Nectr"));
        assert!(!virtual_hostable("a.b.c"));
        assert!(!virtual_hostable("ab"));
        assert!(!virtual_hostable("-abc"));
        assert!(!virtual_hostable(&"a".repeat(64)));
    }

    #[test]
    fn urls() {
        assert_eq!(
            object_url(
                None,
                "us-east-1",
                "nectr_deploy",
                "app/1/a b+c.tar.gz",
                true
            ),
            "https://s3.us-east-1.amazonaws.com/nectr_deploy/app/1/a%20b%2Bc.tar.gz"
        );
        assert_eq!(
            object_url(None, "eu-west-1", "nectr-deploy", "x/é", false),
            "https://nectr-deploy.s3.eu-west-1.amazonaws.com/x/%C3%A9"
        );
        assert_eq!(
            object_url(
                Some("http://127.0.0.1:5000/"),
                "us-east-1",
                "b_1",
                "k",
                true
            ),
            "http://127.0.0.1:5000/b_1/k"
        );
        assert_eq!(
            object_url(Some("https://s3.example.com"), "x", "b", "k", false),
            "https://b.s3.example.com/k"
        );
    }
}

//! Where the token may go: HTTPS, or plain HTTP to this machine.

use std::net::IpAddr;

use anyhow::{anyhow, bail};
use reqwest::Url;

/// Parses and checks a Bitcram base URL (see [`check_base_url`]).
pub fn parse_base_url(text: &str, allow_insecure_http: bool) -> anyhow::Result<Url> {
    let url = Url::parse(text.trim())
        .map_err(|e| anyhow!("invalid Bitcram URL {:?}: {e}", text.trim()))?;
    check_base_url(&url, allow_insecure_http)?;
    Ok(url)
}

/// Checks that the bearer token may be sent to `url`: `https://`, or
/// `http://` to a loopback address (127.0.0.0/8, ::1, `localhost`) unless
/// `allow_insecure_http`; no user name or password, query or fragment.
pub fn check_base_url(url: &Url, allow_insecure_http: bool) -> anyhow::Result<()> {
    if !url.username().is_empty() || url.password().is_some() {
        // Not quoted: the URL holds a password.
        bail!("the Bitcram URL must not carry a user name or password");
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(url) => {}
        "http" => bail!(
            "the Bitcram URL {url} is plain http:// to a host that is not a loopback address: \
             the token would travel unencrypted; use https:// (or allow insecure HTTP explicitly)"
        ),
        other => bail!("the Bitcram URL {url} has the scheme {other}: only https:// is supported"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the Bitcram URL {url} has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("the Bitcram URL {url} must not have a query or a fragment");
    }
    Ok(())
}

/// Whether `url`'s host is this machine: 127.0.0.0/8 (also as an
/// IPv4-mapped IPv6 address), ::1 or `localhost`.
pub(super) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:8",
            "http://LocalHost",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }
}

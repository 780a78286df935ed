//! What gino reads of an X.509 certificate itself, in DER: the signature
//! algorithm (channel binding hashes with its hash), the validity period,
//! and the names a server goes by, for the checks libpq makes that webpki
//! does not (a host named by the common name alone; a self-signed server
//! certificate trusted as its own root). Malformed input reads as `None`,
//! never a panic: the bytes come from the server.
//!
//! Uses: nothing of gino's.

use std::net::IpAddr;

const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0] EXPLICIT Version` of a `TBSCertificate`.
const VERSION: u8 = 0xa0;
/// `[3] EXPLICIT Extensions` of a `TBSCertificate`.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IA5String` of a `GeneralName`.
const DNS_NAME: u8 = 0x82;
/// `iPAddress [7] OCTET STRING` of a `GeneralName`.
const IP_ADDRESS: u8 = 0x87;

/// `2.5.4.3`, the common name.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// `2.5.29.17`, the subject alternative names.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The element at the start of `input`: its tag, its contents, and what
/// follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (length, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let (bytes, input) = input.split_at_checked(usize::from(first & 0x7f))?;
        if bytes.is_empty() || bytes.len() > 4 {
            return None;
        }
        let length = bytes.iter().fold(0, |n, &b| n << 8 | usize::from(b));
        (length, input)
    };
    let (contents, rest) = input.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// The contents of the element at the start of `input`, which must have
/// `tag`, and what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(input)?;
    (found == tag).then_some((contents, rest))
}

/// The object identifier (its DER contents) of a certificate's
/// `signatureAlgorithm`: `Certificate ::= SEQUENCE { tbsCertificate,
/// signatureAlgorithm AlgorithmIdentifier, signature }`.
pub(crate) fn signature_algorithm(certificate: &[u8]) -> Option<&[u8]> {
    let (fields, _) = der(certificate, SEQUENCE)?;
    let (_tbs, after_tbs) = der(fields, SEQUENCE)?;
    let (algorithm, _) = der(after_tbs, SEQUENCE)?;
    Some(der(algorithm, OBJECT_IDENTIFIER)?.0)
}

/// The fields of a `TBSCertificate` read here.
struct Tbs<'a> {
    validity: &'a [u8],
    subject: &'a [u8],
    /// The contents of the `Extensions` sequence, if there is one.
    extensions: Option<&'a [u8]>,
}

fn tbs(certificate: &[u8]) -> Option<Tbs<'_>> {
    let (fields, _) = der(certificate, SEQUENCE)?;
    let (tbs, _) = der(fields, SEQUENCE)?;
    let rest = match element(tbs)? {
        (VERSION, _, after) => after,
        _ => tbs,
    };
    let (_serial, rest) = der(rest, INTEGER)?;
    let (_signature, rest) = der(rest, SEQUENCE)?;
    let (_issuer, rest) = der(rest, SEQUENCE)?;
    let (validity, rest) = der(rest, SEQUENCE)?;
    let (subject, rest) = der(rest, SEQUENCE)?;
    let (_key, mut rest) = der(rest, SEQUENCE)?;
    let mut extensions = None;
    while !rest.is_empty() {
        let (tag, contents, after) = element(rest)?;
        if tag == EXTENSIONS {
            extensions = Some(der(contents, SEQUENCE)?.0);
        }
        rest = after;
    }
    Some(Tbs {
        validity,
        subject,
        extensions,
    })
}

/// A certificate's validity period, in seconds since the Unix epoch:
/// `notBefore` and `notAfter`.
pub(crate) fn validity(certificate: &[u8]) -> Option<(i64, i64)> {
    let validity = tbs(certificate)?.validity;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some((not_before, not_after))
}

/// The `UTCTime` or `GeneralizedTime` at the start of `input` (DER: to the
/// second, in UTC), and what follows it.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, contents, rest) = element(input)?;
    let digits = contents.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        digits
            .get(range)?
            .iter()
            .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
    };
    let (year, at) = match (tag, digits.len()) {
        // Two digits: 1950 to 2049 (RFC 5280).
        (UTC_TIME, 12) => {
            let yy = number(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let [month, day, hour, minute, second] =
        [0, 2, 4, 6, 8].map(|i| number(at + i..at + i + 2).unwrap_or(-1));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second, rest))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The names a server certificate gives its holder.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Names<'a> {
    /// The `dNSName`s of its subject alternative names.
    dns: Vec<&'a [u8]>,
    /// The `iPAddress`es of its subject alternative names (4 or 16 bytes).
    ips: Vec<&'a [u8]>,
    /// The subject's common name (the first, as libpq reads it).
    common_name: Option<&'a [u8]>,
}

/// The names `certificate` gives its holder.
pub(crate) fn names(certificate: &[u8]) -> Option<Names<'_>> {
    let tbs = tbs(certificate)?;
    let mut names = Names {
        common_name: common_name(tbs.subject)?,
        ..Names::default()
    };
    let mut extensions = tbs.extensions.unwrap_or_default();
    while !extensions.is_empty() {
        let (extension, after) = der(extensions, SEQUENCE)?;
        extensions = after;
        let (id, rest) = der(extension, OBJECT_IDENTIFIER)?;
        if id != SUBJECT_ALT_NAME {
            continue;
        }
        let rest = der(rest, BOOLEAN).map_or(rest, |(_critical, after)| after);
        let (value, _) = der(rest, OCTET_STRING)?;
        let (mut general_names, _) = der(value, SEQUENCE)?;
        while !general_names.is_empty() {
            let (tag, name, after) = element(general_names)?;
            general_names = after;
            match tag {
                DNS_NAME => names.dns.push(name),
                IP_ADDRESS => names.ips.push(name),
                _ => {}
            }
        }
    }
    Some(names)
}

/// The first common name of a `Name` (`RDNSequence`): `Some(None)` when it
/// has none, `None` when it is malformed.
fn common_name(mut name: &[u8]) -> Option<Option<&[u8]>> {
    while !name.is_empty() {
        let (mut attributes, after) = der(name, SET)?;
        name = after;
        while !attributes.is_empty() {
            let (attribute, after) = der(attributes, SEQUENCE)?;
            attributes = after;
            let (id, value) = der(attribute, OBJECT_IDENTIFIER)?;
            if id == COMMON_NAME {
                return Some(Some(element(value)?.1));
            }
        }
    }
    Some(None)
}

impl Names<'_> {
    /// Whether `host` is one of these names, as libpq decides: by the
    /// subject alternative names, and by the common name only when none of
    /// them is of the host's kind (an IP address or a DNS name).
    pub(crate) fn match_host(&self, host: &str) -> bool {
        let ip: Option<IpAddr> = host.parse().ok();
        let by_dns = self.dns.iter().any(|name| name_matches(name, host));
        let by_ip = ip.is_some_and(|ip| {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            self.ips.iter().any(|address| *address == octets)
        });
        let same_kind = if ip.is_some() {
            !self.ips.is_empty()
        } else {
            !self.dns.is_empty()
        };
        by_dns
            || by_ip
            || !same_kind
                && self
                    .common_name
                    .is_some_and(|name| name_matches(name, host))
    }
}

/// libpq's match of a certificate's name with the host: equal but for
/// case, or a wildcard `*.` standing for the host's first label alone.
fn name_matches(name: &[u8], host: &str) -> bool {
    let host = host.as_bytes();
    if name.contains(&0) {
        return false;
    }
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(domain) = name.strip_prefix(b"*") else {
        return false;
    };
    if !domain.starts_with(b".") || domain.len() < 2 || host.len() < name.len() {
        return false;
    }
    let label_end = host.len() - domain.len();
    host[label_end..].eq_ignore_ascii_case(domain) && !host[..label_end].contains(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element of `tag` holding `contents`.
    fn element(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..0x80 => out.push(n as u8),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(contents);
        out
    }

    fn name(common_name: Option<&str>) -> Vec<u8> {
        let country = element(
            SET,
            &element(
                SEQUENCE,
                &[
                    element(OBJECT_IDENTIFIER, &[0x55, 4, 6]),
                    element(0x13, b"DE"),
                ]
                .concat(),
            ),
        );
        let cn = common_name.map(|cn| {
            element(
                SET,
                &element(
                    SEQUENCE,
                    &[
                        element(OBJECT_IDENTIFIER, COMMON_NAME),
                        element(0x0c, cn.as_bytes()),
                    ]
                    .concat(),
                ),
            )
        });
        element(SEQUENCE, &[country, cn.unwrap_or_default()].concat())
    }

    /// A certificate's outline: what is read here, the rest placeholders.
    fn certificate(
        common_name: Option<&str>,
        alt_names: &[(u8, &[u8])],
        times: [&str; 2],
    ) -> Vec<u8> {
        let time = |t: &str| {
            element(
                if t.len() == 13 {
                    UTC_TIME
                } else {
                    GENERALIZED_TIME
                },
                t.as_bytes(),
            )
        };
        let general: Vec<u8> = alt_names
            .iter()
            .flat_map(|(tag, n)| element(*tag, n))
            .collect();
        let san = element(
            SEQUENCE,
            &[
                element(OBJECT_IDENTIFIER, SUBJECT_ALT_NAME),
                element(BOOLEAN, &[0]),
                element(OCTET_STRING, &element(SEQUENCE, &general)),
            ]
            .concat(),
        );
        let other = element(
            SEQUENCE,
            &[
                element(OBJECT_IDENTIFIER, &[0x55, 0x1d, 0x13]),
                element(OCTET_STRING, &[0x30, 0]),
            ]
            .concat(),
        );
        let extensions = element(EXTENSIONS, &element(SEQUENCE, &[other, san].concat()));
        let tbs = element(
            SEQUENCE,
            &[
                element(VERSION, &element(INTEGER, &[2])),
                element(INTEGER, &[1]),
                element(SEQUENCE, &element(OBJECT_IDENTIFIER, &[0x2a, 3])),
                name(Some("issuer")),
                element(SEQUENCE, &[time(times[0]), time(times[1])].concat()),
                name(common_name),
                element(SEQUENCE, &[0x05, 0x00]),
                if alt_names.is_empty() {
                    Vec::new()
                } else {
                    extensions
                },
            ]
            .concat(),
        );
        let algorithm = element(SEQUENCE, &element(OBJECT_IDENTIFIER, &[0x2a, 3]));
        element(SEQUENCE, &[tbs, algorithm, element(0x03, &[0, 1])].concat())
    }

    const ALWAYS: [&str; 2] = ["200101000000Z", "20991231235959Z"];

    #[test]
    fn the_common_name_counts_only_without_alternative_names_of_the_hosts_kind() {
        let cn_only = certificate(Some("db.example.com"), &[], ALWAYS);
        let names = names(&cn_only).unwrap();
        assert!(names.match_host("db.example.com"));
        assert!(names.match_host("DB.Example.com"));
        assert!(!names.match_host("other.example.com"));

        let with_dns = certificate(
            Some("db.example.com"),
            &[(DNS_NAME, b"api.example.com")],
            ALWAYS,
        );
        let names = super::names(&with_dns).unwrap();
        assert!(names.match_host("api.example.com"));
        assert!(
            !names.match_host("db.example.com"),
            "a DNS name hides the common name"
        );

        // An IP host: DNS names do not hide the common name, IP addresses do.
        let cn_ip = certificate(Some("127.0.0.1"), &[(DNS_NAME, b"localhost")], ALWAYS);
        assert!(super::names(&cn_ip).unwrap().match_host("127.0.0.1"));
        let with_ip = certificate(Some("127.0.0.1"), &[(IP_ADDRESS, &[10, 0, 0, 1])], ALWAYS);
        let names = super::names(&with_ip).unwrap();
        assert!(names.match_host("10.0.0.1"));
        assert!(!names.match_host("127.0.0.1"));
        let v6 = certificate(
            None,
            &[(IP_ADDRESS, &std::net::Ipv6Addr::LOCALHOST.octets())],
            ALWAYS,
        );
        assert!(super::names(&v6).unwrap().match_host("::1"));
        assert!(
            !super::names(&certificate(None, &[], ALWAYS))
                .unwrap()
                .match_host("x")
        );
    }

    #[test]
    fn a_wildcard_stands_for_the_first_label_alone() {
        let matches = |name: &str, host: &str| name_matches(name.as_bytes(), host);
        assert!(matches("*.example.com", "db.example.com"));
        assert!(!matches("*.example.com", "a.db.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", ".example.com"));
        assert!(!matches("*", "db"));
        assert!(!matches("d*.example.com", "db.example.com"));
        assert!(!name_matches(b"db\0.evil.com", "db"));
    }

    #[test]
    fn validity_reads_both_time_forms() {
        let cert = certificate(Some("x"), &[], ["700101000000Z", "20380119031407Z"]);
        assert_eq!(validity(&cert), Some((0, i32::MAX as i64)));
        let cert = certificate(Some("x"), &[], ["491231235959Z", "500101000000Z"]);
        let (before, after) = validity(&cert).unwrap();
        assert_eq!(before, 2_524_607_999, "49 is 2049");
        assert_eq!(after, -631_152_000, "50 is 1950");
        let bad = certificate(Some("x"), &[], ["7001010000Z0", "20380119031407Z"]);
        assert_eq!(validity(&bad), None);
    }

    #[test]
    fn malformed_certificates_read_as_none() {
        let cert = certificate(Some("db"), &[(DNS_NAME, b"db")], ALWAYS);
        assert!(names(&cert).is_some() && validity(&cert).is_some());
        for cut in 0..cert.len() {
            assert_eq!(names(&cert[..cut]), None, "cut at {cut}");
            assert_eq!(validity(&cert[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            signature_algorithm(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }
}

//! `--param KEY=VALUE` parameters, checked against a declared list before any work starts.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// A declared parameter: its key, default (as text) and help line.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ParamSpec {
    pub key: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

impl ParamSpec {
    /// The specs of `parts`, in order, as one array of `N` (a compile-time error when the
    /// lengths do not add up to `N`): tasks that share parameters declare them once.
    pub const fn concat<const N: usize>(parts: &[&[ParamSpec]]) -> [ParamSpec; N] {
        let blank = ParamSpec {
            key: "",
            default: "",
            help: "",
        };
        let mut out = [blank; N];
        let (mut i, mut n) = (0, 0);
        while i < parts.len() {
            let mut j = 0;
            while j < parts[i].len() {
                assert!(n < N, "more parameter specs than N");
                out[n] = parts[i][j];
                n += 1;
                j += 1;
            }
            i += 1;
        }
        assert!(n == N, "fewer parameter specs than N");
        out
    }
}

/// Parameters given as text, resolved against a list of [`ParamSpec`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// Parses `KEY=VALUE` items (later items override earlier ones).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self> {
        let mut map = BTreeMap::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| CoreError::MalformedParam(item.to_string()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(CoreError::MalformedParam(item.to_string()));
            }
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Self(map))
    }

    /// Checks every key against `specs` and fills in the defaults: the resolved parameters.
    pub fn resolve(&self, owner: &str, specs: &[ParamSpec]) -> Result<Self> {
        for key in self.0.keys() {
            if !specs.iter().any(|s| s.key == key) {
                let valid = specs.iter().map(|s| s.key).collect::<Vec<_>>().join(", ");
                return Err(CoreError::UnknownParam {
                    owner: owner.to_string(),
                    key: key.clone(),
                    valid: if valid.is_empty() {
                        "(none)".into()
                    } else {
                        valid
                    },
                });
            }
        }
        let mut out = BTreeMap::new();
        for s in specs {
            let v = self
                .0
                .get(s.key)
                .cloned()
                .unwrap_or_else(|| s.default.to_string());
            out.insert(s.key.to_string(), v);
        }
        Ok(Self(out))
    }

    /// Restricts to the keys of `specs` (used to split one `--param` list between owners).
    pub fn subset(&self, specs: &[ParamSpec]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| specs.iter().any(|s| s.key == k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A typed value; `expected` describes the accepted values for the error message.
    pub fn get<T: FromStr>(&self, key: &str, expected: &str) -> Result<T> {
        let v = self.raw(key).ok_or_else(|| CoreError::BadParam {
            key: key.into(),
            value: String::new(),
            expected: expected.into(),
        })?;
        v.parse::<T>().map_err(|_| CoreError::BadParam {
            key: key.into(),
            value: v.into(),
            expected: expected.into(),
        })
    }

    /// A typed value that must satisfy `ok`.
    pub fn get_checked<T: FromStr + Copy + Display>(
        &self,
        key: &str,
        expected: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<T> {
        let v: T = self.get(key, expected)?;
        if ok(v) {
            Ok(v)
        } else {
            Err(CoreError::BadParam {
                key: key.into(),
                value: v.to_string(),
                expected: expected.into(),
            })
        }
    }

    pub fn insert(&mut self, key: &str, value: impl ToString) {
        self.0.insert(key.to_string(), value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            key: "window",
            default: "32",
            help: "",
        },
        ParamSpec {
            key: "dist",
            default: "uniform",
            help: "",
        },
    ];

    #[test]
    fn resolve_fills_defaults_and_rejects_unknown() {
        let p = Params::parse(&["window=16"])
            .unwrap()
            .resolve("t", SPECS)
            .unwrap();
        assert_eq!(p.get::<usize>("window", "int").unwrap(), 16);
        assert_eq!(p.raw("dist"), Some("uniform"));
        let e = Params::parse(&["windw=3"])
            .unwrap()
            .resolve("t", SPECS)
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("windw") && msg.contains("window, dist"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_and_bad_values_are_errors() {
        assert!(Params::parse(&["window"]).is_err());
        assert!(Params::parse(&["=3"]).is_err());
        let p = Params::parse(&["window=abc"]).unwrap();
        let e = p.get::<usize>("window", "a positive integer").unwrap_err();
        assert!(e.to_string().contains("a positive integer"));
        let p = Params::parse(&["window=0"]).unwrap();
        assert!(p
            .get_checked::<usize>("window", ">= 1", |w| w >= 1)
            .is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_roundtrips_simple_pairs(k in "[a-z_]{1,8}", v in "[a-z0-9.]{0,8}") {
            let p = Params::parse(&[format!("{k}={v}")]).unwrap();
            proptest::prop_assert_eq!(p.raw(&k), Some(v.as_str()));
        }
    }
}

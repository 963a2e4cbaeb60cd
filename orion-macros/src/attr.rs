//! Parsing of `#[flow(...)]` and `#[task(...)]` options. Every mistake is collected, so one
//! compile reports all of them.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// Which attribute is being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Flow,
    Task,
}

const FLOW_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "task_runner",
    "retries",
    "retry_delay_seconds",
    "timeout_seconds",
    "flow_run_name",
];

const TASK_KEYS: &[&str] = &[
    "name",
    "description",
    "tags",
    "retries",
    "retry_delay_seconds",
    "retry_jitter_factor",
    "timeout_seconds",
    "cache_key_fn",
    "cache_expiration",
    "task_run_name",
];

/// The parsed options; absent ones are `None`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<LitStr>,
    pub(crate) description: Option<LitStr>,
    pub(crate) task_runner: Option<Expr>,
    pub(crate) retries: Option<u32>,
    /// A `RetryDelay` expression.
    pub(crate) retry_delay: Option<TokenStream>,
    /// Flows take one number only.
    pub(crate) retry_delay_seconds: Option<f64>,
    pub(crate) retry_jitter_factor: Option<f64>,
    pub(crate) timeout_seconds: Option<f64>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) cache_key_fn: Option<syn::Path>,
    pub(crate) cache_expiration: Option<f64>,
    pub(crate) run_name: Option<LitStr>,
}

/// Collects errors; `finish` joins them into one.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

pub(crate) fn parse(kind: Kind, args: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return options;
        }
    };
    let keys = match kind {
        Kind::Flow => FLOW_KEYS,
        Kind::Task => TASK_KEYS,
    };
    let what = match kind {
        Kind::Flow => "flow",
        Kind::Task => "task",
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let Meta::NameValue(nv) = meta else {
            errors.spanned(
                &meta,
                format!(
                    "expected `key = value`; valid {what} options: {}",
                    keys.join(", ")
                ),
            );
            continue;
        };
        let Some(key) = nv.path.get_ident().map(ToString::to_string) else {
            errors.spanned(
                &nv.path,
                format!("unknown {what} option; valid options: {}", keys.join(", ")),
            );
            continue;
        };
        if !keys.contains(&key.as_str()) {
            errors.spanned(
                &nv.path,
                format!(
                    "unknown {what} option `{key}`; valid options: {}",
                    keys.join(", ")
                ),
            );
            continue;
        }
        if seen.contains(&key) {
            errors.spanned(&nv.path, format!("option `{key}` is given twice"));
            continue;
        }
        seen.push(key.clone());
        let value = &nv.value;
        match key.as_str() {
            "name" => options.name = string(value, &key, errors),
            "version" => options.version = string(value, &key, errors),
            "description" => options.description = string(value, &key, errors),
            "flow_run_name" | "task_run_name" => options.run_name = string(value, &key, errors),
            "task_runner" => options.task_runner = Some(value.clone()),
            "retries" => options.retries = integer(value, &key, errors),
            "retry_delay_seconds" if kind == Kind::Flow => {
                options.retry_delay_seconds = seconds(value, &key, errors);
            }
            "retry_delay_seconds" => options.retry_delay = retry_delay(value, errors),
            "retry_jitter_factor" => options.retry_jitter_factor = seconds(value, &key, errors),
            "timeout_seconds" => {
                options.timeout_seconds = seconds(value, &key, errors);
                if options.timeout_seconds == Some(0.0) {
                    errors.spanned(value, "`timeout_seconds` must be greater than 0");
                }
            }
            "cache_expiration" => options.cache_expiration = seconds(value, &key, errors),
            "tags" => options.tags = string_list(value, errors),
            "cache_key_fn" => match value {
                Expr::Path(p) => options.cache_key_fn = Some(p.path.clone()),
                other => errors.spanned(
                    other,
                    "`cache_key_fn` takes the path of a function `fn(&TaskRunContext, &serde_json::Map<String, Value>) -> Option<String>`, e.g. `orion::task_input_hash`",
                ),
            },
            _ => unreachable!("every key in the list is handled"),
        }
    }
    options
}

fn string(value: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            errors.spanned(other, format!("`{key}` takes a string literal"));
            None
        }
    }
}

fn integer(value: &Expr, key: &str, errors: &mut Errors) -> Option<u32> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.spanned(
                    i,
                    format!("`{key}` takes a whole number from 0 to {}", u32::MAX),
                );
                None
            }
        },
        other => {
            errors.spanned(
                other,
                format!("`{key}` takes a whole number, e.g. `{key} = 3`"),
            );
            None
        }
    }
}

/// A non-negative number of seconds, integer or float literal.
fn seconds(value: &Expr, key: &str, errors: &mut Errors) -> Option<f64> {
    let parsed = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if n.is_finite() && n >= 0.0 => Some(n),
        _ => {
            errors.spanned(
                value,
                format!("`{key}` takes a non-negative number, e.g. `{key} = 10` or `{key} = 0.5`"),
            );
            None
        }
    }
}

fn retry_delay(value: &Expr, errors: &mut Errors) -> Option<TokenStream> {
    let help = "`retry_delay_seconds` takes a number (`10`), a list (`[1, 10, 100]`), or `exponential_backoff(10)`";
    match value {
        Expr::Lit(_) => {
            let n = seconds(value, "retry_delay_seconds", errors)?;
            Some(quote!(::orion::__private::RetryDelay::Fixed(#n)))
        }
        Expr::Array(array) => {
            let mut list = Vec::new();
            for item in &array.elems {
                list.push(seconds(item, "retry_delay_seconds", errors)?);
            }
            if list.is_empty() {
                errors.spanned(value, help);
                return None;
            }
            Some(
                quote!(::orion::__private::RetryDelay::List(::orion::__private::Cow::Borrowed(&[#(#list),*]))),
            )
        }
        Expr::Call(call)
            if matches!(&*call.func, Expr::Path(p) if p.path.is_ident("exponential_backoff"))
                && call.args.len() == 1 =>
        {
            let base = seconds(&call.args[0], "exponential_backoff", errors)?;
            Some(quote!(::orion::__private::RetryDelay::Exponential { base_seconds: #base }))
        }
        other => {
            errors.spanned(other, help);
            None
        }
    }
}

fn string_list(value: &Expr, errors: &mut Errors) -> Vec<LitStr> {
    let Expr::Array(array) = value else {
        errors.spanned(
            value,
            "`tags` takes a list of string literals, e.g. `tags = [\"etl\", \"nightly\"]`",
        );
        return Vec::new();
    };
    array
        .elems
        .iter()
        .filter_map(|e| string(e, "tags", errors))
        .collect()
}

//! Code generation for `#[flow]` and `#[task]`. The generated code calls only
//! `::orion::__private`; all behaviour lives in `orion`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::attr::{self, Errors, Kind, Options};

/// One parameter of the user's function.
struct Param {
    ident: Ident,
    mutable: bool,
    ty: Type,
}

/// Expands the attribute; on errors the user's function is still emitted, with the errors.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = attr::parse(kind, args, &mut errors);
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #item);
        }
    };
    let params = check_signature(kind, &func, &mut errors);
    match errors.finish() {
        Some(e) => {
            let e = e.to_compile_error();
            quote!(#e #func)
        }
        None => match kind {
            Kind::Task => task(&func, &params, &options),
            Kind::Flow => flow(&func, &params, &options),
        },
    }
}

fn check_signature(kind: Kind, func: &ItemFn, errors: &mut Errors) -> Vec<Param> {
    let sig = &func.sig;
    let what = if kind == Kind::Flow {
        "#[flow]"
    } else {
        "#[task]"
    };
    if kind == Kind::Flow && sig.asyncness.is_none() {
        errors.spanned(sig.fn_token, "#[flow] functions must be `async fn`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            format!("{what} functions cannot be generic: runs are recorded and called by name"),
        );
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, format!("{what} functions cannot be `const`"));
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, format!("{what} functions cannot be `unsafe`"));
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, format!("{what} functions cannot be variadic"));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if matches!(**ty, Type::ImplTrait(_)) {
            errors.spanned(
                ty,
                format!("{what} functions must name their return type, not `impl Trait`"),
            );
        }
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => errors.spanned(r, format!("{what} functions cannot take `self`")),
            FnArg::Typed(pt) => {
                let Pat::Ident(pi) = &*pt.pat else {
                    errors.spanned(
                        &pt.pat,
                        format!("{what} parameters must be plain names, e.g. `name: String`"),
                    );
                    continue;
                };
                if pi.by_ref.is_some() || pi.subpat.is_some() {
                    errors.spanned(
                        &pt.pat,
                        format!("{what} parameters must be plain names, e.g. `name: String`"),
                    );
                    continue;
                }
                if matches!(*pt.ty, Type::Reference(_) | Type::ImplTrait(_)) {
                    errors.spanned(&pt.ty, format!("{what} parameters must be owned types: a run may outlive the caller's borrows"));
                    continue;
                }
                params.push(Param {
                    ident: pi.ident.clone(),
                    mutable: pi.mutability.is_some(),
                    ty: (*pt.ty).clone(),
                });
            }
        }
    }
    params
}

fn return_type(func: &ItemFn) -> Type {
    match &func.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// Whether the return type is spelled `…Result<…>` (std, anyhow, io and similar aliases).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}

fn opt_str(lit: Option<&syn::LitStr>) -> TokenStream {
    match lit {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

fn opt_f64(n: Option<f64>) -> TokenStream {
    match n {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    }
}

/// The pieces shared by both macros: the inner function holding the user's body, the argument
/// tuple, and the factory that makes one attempt (cloning the arguments unless it is the last).
struct Body {
    inner_fn: TokenStream,
    store_args: TokenStream,
    unpack_args: TokenStream,
    call_inner: TokenStream,
}

/// `named_by_template`: a run-name template may be the only user of a parameter, which is
/// then not "unused" although the body does not read it.
fn body(func: &ItemFn, params: &[Param], ret: &Type, named_by_template: bool) -> Body {
    let inner = format_ident!("__orion_{}", func.sig.ident);
    let asyncness = &func.sig.asyncness;
    let block = &func.block;
    let idents: Vec<&Ident> = params.iter().map(|p| &p.ident).collect();
    let types: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let muts: Vec<TokenStream> = params
        .iter()
        .map(|p| if p.mutable { quote!(mut) } else { quote!() })
        .collect();
    let clones = params.iter().enumerate().map(|(i, p)| {
        let (ty, index) = (&p.ty, syn::Index::from(i));
        quote_spanned!(ty.span()=> ::orion::__private::clone_argument::<#ty>(&__orion_ref.#index))
    });
    let unused = if named_by_template {
        quote!(unused_variables,)
    } else {
        quote!()
    };
    let inner_fn = quote! {
        #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value, unused_mut, #unused)]
        #asyncness fn #inner(#(#muts #idents: #types),*) -> #ret #block
    };
    if params.is_empty() {
        return Body {
            inner_fn,
            store_args: quote!(),
            unpack_args: quote!(let _ = __orion_last;),
            call_inner: quote!(#inner()),
        };
    }
    let store_args = quote!(let mut __orion_args = ::core::option::Option::Some((#(#idents,)*)););
    let unpack_args = quote! {
        #[allow(unused_variables)]
        let (#(#idents,)*) = if __orion_last {
            __orion_args.take().expect("orion runs the last attempt once")
        } else {
            let __orion_ref = __orion_args.as_ref().expect("orion runs the last attempt once");
            (#(#clones,)*)
        };
    };
    let call_inner = quote!(#inner(#(#idents),*));
    Body {
        inner_fn,
        store_args,
        unpack_args,
        call_inner,
    }
}

fn verdict(ret: &Type) -> TokenStream {
    if is_result(ret) {
        quote! {
            |__orion_r: &#ret| match __orion_r {
                ::core::result::Result::Ok(__orion_v) => ::orion::__private::Verdict::of(__orion_v),
                ::core::result::Result::Err(__orion_e) => {
                    #[allow(unused_imports)]
                    use ::orion::__private::{DisplayChain as _, ErrorChain as _};
                    ::orion::__private::Verdict::Err {
                        message: ::std::string::ToString::to_string(__orion_e),
                        chain: __orion_e.error_chain(),
                    }
                }
            }
        }
    } else {
        quote!(|__orion_r: &#ret| ::orion::__private::Verdict::of(__orion_r))
    }
}

fn from_error(ret: &Type) -> TokenStream {
    quote! {{
        #[allow(unused_imports)]
        use ::orion::__private::{ErrFromOrion as _, NoErrFromOrion as _};
        (&::orion::__private::Probe::<#ret>::new()).error_converter()
    }}
}

fn run_name(options: &Options) -> TokenStream {
    match &options.run_name {
        Some(template) => quote!(::core::option::Option::Some(::std::format!(#template))),
        None => quote!(::core::option::Option::None),
    }
}

fn task(func: &ItemFn, params: &[Param], options: &Options) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    let fn_name = &sig.ident;
    let ret = return_type(func);
    let name = options
        .name
        .as_ref()
        .map_or_else(|| fn_name.to_string(), syn::LitStr::value);
    let description = opt_str(options.description.as_ref());
    let tags = &options.tags;
    let retries = options.retries.unwrap_or(0);
    let retry_delay = options
        .retry_delay
        .clone()
        .unwrap_or_else(|| quote!(::orion::__private::RetryDelay::Fixed(0.0)));
    let jitter = opt_f64(options.retry_jitter_factor);
    let timeout = opt_f64(options.timeout_seconds);
    let expiration = opt_f64(options.cache_expiration);
    let cache_key_fn = match &options.cache_key_fn {
        Some(path) => quote!(::core::option::Option::Some(#path as ::orion::__private::CacheKeyFn)),
        None => quote!(::core::option::Option::None),
    };
    let args_sig = params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    });
    let mut checks: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let ty = &p.ty;
            quote_spanned!(ty.span()=> ::orion::__private::task_argument::<#ty>();)
        })
        .collect();
    checks.push(quote_spanned!(ret.span()=> ::orion::__private::output::<#ret>();));
    let (inputs, codec) = if options.cache_key_fn.is_some() {
        checks.extend(params.iter().map(|p| {
            let ty = &p.ty;
            quote_spanned!(ty.span()=> ::orion::__private::cache_input::<#ty>();)
        }));
        // Only successes are cached: a task returning `Result<T, E>` needs only `T` to serialize.
        let (cached, codec) = if is_result(&ret) {
            (
                quote!(<#ret as ::orion::__private::OkType>::Ok),
                quote!(::orion::__private::result_codec::<#ret, _>()),
            )
        } else {
            (quote!(#ret), quote!(::orion::__private::codec::<#ret>()))
        };
        checks.push(quote_spanned!(ret.span()=> ::orion::__private::cache_output::<#cached>();));
        let inserts = params.iter().map(|p| {
            let ident = &p.ident;
            let key = ident.to_string();
            quote! {
                __orion_map.insert(
                    ::std::string::String::from(#key),
                    ::orion::__private::serde_json::to_value(&#ident).unwrap_or(::orion::__private::serde_json::Value::Null),
                );
            }
        });
        (
            quote!(::core::option::Option::Some({
                let mut __orion_map = ::orion::__private::serde_json::Map::new();
                #(#inserts)*
                __orion_map
            })),
            quote!(::core::option::Option::Some(#codec)),
        )
    } else {
        (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        )
    };
    let Body {
        inner_fn,
        store_args,
        unpack_args,
        call_inner,
    } = body(func, params, &ret, options.run_name.is_some());
    let make = if sig.asyncness.is_some() {
        quote! {
            ::orion::__private::Body::Async(::std::boxed::Box::new(move |__orion_last: bool| {
                #unpack_args
                ::std::boxed::Box::pin(#call_inner) as ::orion::__private::BoxFuture<#ret>
            }))
        }
    } else {
        quote! {
            ::orion::__private::Body::Blocking(::std::boxed::Box::new(move |__orion_last: bool| {
                #unpack_args
                ::std::boxed::Box::new(move || #call_inner) as ::std::boxed::Box<dyn ::core::ops::FnOnce() -> #ret + ::core::marker::Send>
            }))
        }
    };
    let verdict = verdict(&ret);
    let from_error = from_error(&ret);
    let run_name = run_name(options);
    let fn_name_str = fn_name.to_string();
    quote! {
        #(#attrs)*
        #vis fn #fn_name(#(#args_sig),*) -> ::orion::TaskCall<#ret> {
            #inner_fn
            static __ORION_TASK: ::orion::__private::TaskSpec = ::orion::__private::TaskSpec {
                name: #name,
                path: ::core::concat!(::core::module_path!(), "::", #fn_name_str),
                description: #description,
                tags: &[#(#tags),*],
                retries: #retries,
                retry_delay: #retry_delay,
                retry_jitter_factor: #jitter,
                timeout_seconds: #timeout,
                cache_key_fn: #cache_key_fn,
                cache_expiration_seconds: #expiration,
                standalone_calls: ::orion::__private::AtomicU32::new(0),
                key: ::orion::__private::OnceLock::new(),
            };
            #(#checks)*
            let __orion_run_name = #run_name;
            let __orion_inputs = #inputs;
            #store_args
            let __orion_body = #make;
            ::orion::TaskCall::__new(&__ORION_TASK, __orion_body, __orion_run_name, __orion_inputs, #verdict, #codec, #from_error)
        }
    }
}

fn flow(func: &ItemFn, params: &[Param], options: &Options) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = func;
    let fn_name = &sig.ident;
    let ret = return_type(func);
    // Prefect's default flow name: the function's name with hyphens for underscores.
    let name = options
        .name
        .as_ref()
        .map_or_else(|| fn_name.to_string().replace('_', "-"), syn::LitStr::value);
    let version = opt_str(options.version.as_ref());
    let description = opt_str(options.description.as_ref());
    let retries = options.retries.unwrap_or(0);
    let retry_delay = options.retry_delay_seconds.unwrap_or(0.0);
    let timeout = opt_f64(options.timeout_seconds);
    let task_runner = match &options.task_runner {
        Some(expr) => {
            quote_spanned!(expr.span()=> { #[allow(unused_imports)] use ::orion::TaskRunner; #expr })
        }
        None => quote!(::orion::__private::TaskRunner::concurrent()),
    };
    let marker = format_ident!("__OrionFlow_{}", fn_name);
    let idents: Vec<&Ident> = params.iter().map(|p| &p.ident).collect();
    let types: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let keys: Vec<String> = idents.iter().map(ToString::to_string).collect();
    let type_names: Vec<String> = types.iter().map(|ty| type_name(ty)).collect();
    let mut checks: Vec<TokenStream> = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> ::orion::__private::flow_parameter::<#ty>();))
        .collect();
    checks.push(quote_spanned!(ret.span()=> ::orion::__private::output::<#ret>();));
    let inserts = params.iter().map(|p| {
        let (ident, ty, key) = (&p.ident, &p.ty, p.ident.to_string());
        quote_spanned! {ty.span()=>
            __orion_map.insert(::std::string::String::from(#key), ::orion::__private::parameter_value::<#ty>(#key, &#ident)?);
        }
    });
    let takes: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let (ident, ty, key) = (&p.ident, &p.ty, p.ident.to_string());
            quote_spanned! {ty.span()=>
                let #ident = ::orion::__private::take_parameter::<#ty>(#name, &mut __orion_params, #key)?;
            }
        })
        .collect();
    let Body {
        inner_fn,
        store_args,
        unpack_args,
        call_inner,
    } = body(func, params, &ret, options.run_name.is_some());
    let verdict = verdict(&ret);
    let from_error = from_error(&ret);
    let run_name = run_name(options);
    let fn_name_str = fn_name.to_string();
    let registry_fn = format_ident!("__orion_registry_{}", fn_name);
    let validate_fn = format_ident!("__orion_validate_{}", fn_name);
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis enum #marker {}

        impl ::orion::__private::FlowMarker for #marker {
            const NAME: &'static str = #name;
        }

        #(#attrs)*
        #vis fn #fn_name(#(#idents: #types),*) -> ::orion::FlowCall<#ret, #marker> {
            #inner_fn
            static __ORION_FLOW: ::orion::__private::FlowSpec = ::orion::__private::FlowSpec {
                name: #name,
                path: ::core::concat!(::core::module_path!(), "::", #fn_name_str),
                version: #version,
                description: #description,
                task_runner: #task_runner,
                retries: #retries,
                retry_delay_seconds: #retry_delay,
                timeout_seconds: #timeout,
                parameters: &[#(#keys),*],
            };
            #(#checks)*
            let __orion_run_name = #run_name;
            let __orion_parameters = (|| -> ::core::result::Result<::orion::__private::serde_json::Map<::std::string::String, ::orion::__private::serde_json::Value>, ::std::string::String> {
                #[allow(unused_mut)]
                let mut __orion_map = ::orion::__private::serde_json::Map::new();
                #(#inserts)*
                ::core::result::Result::Ok(__orion_map)
            })();
            #store_args
            let __orion_body: ::std::boxed::Box<dyn ::core::ops::FnMut(bool) -> ::orion::__private::BoxFuture<#ret> + ::core::marker::Send> =
                ::std::boxed::Box::new(move |__orion_last: bool| {
                    #unpack_args
                    ::std::boxed::Box::pin(#call_inner) as ::orion::__private::BoxFuture<#ret>
                });
            ::orion::FlowCall::__new(&__ORION_FLOW, __orion_parameters, __orion_run_name, __orion_body, #verdict, #from_error)
        }

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #registry_fn(
            __orion_runtime: &::orion::Orion,
            #[allow(unused_mut)] mut __orion_params: ::orion::__private::serde_json::Map<::std::string::String, ::orion::__private::serde_json::Value>,
            __orion_adopt: ::core::option::Option<::orion::store::FlowRun>,
        ) -> ::orion::Result<::orion::__private::BoxFuture<::orion::State>> {
            #(#takes)*
            ::orion::__private::reject_unknown(#name, &__orion_params, &[#(#keys),*])?;
            #[allow(unused_imports)]
            use ::orion::__private::{EncodeOk as _, EncodeValue as _, NoEncodeValue as _};
            let __orion_encode = (&&::orion::__private::Probe::<#ret>::new()).encoder();
            ::core::result::Result::Ok(::orion::__private::registry_run(__orion_runtime, #fn_name(#(#idents),*), __orion_encode, __orion_adopt))
        }

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #validate_fn(
            __orion_params: &::orion::__private::serde_json::Map<::std::string::String, ::orion::__private::serde_json::Value>,
        ) -> ::orion::Result<()> {
            #[allow(unused_mut)]
            let mut __orion_params = __orion_params.clone();
            #(#takes)*
            #(let _ = &#idents;)*
            ::orion::__private::reject_unknown(#name, &__orion_params, &[#(#keys),*])
        }

        ::orion::__private::inventory::submit! {
            ::orion::__private::RegisteredFlow {
                name: #name,
                parameters: &[#(#keys),*],
                parameter_types: &[#(#type_names),*],
                version: #version,
                description: #description,
                retries: #retries,
                retry_delay_seconds: #retry_delay,
                call: #registry_fn,
                validate: #validate_fn,
            }
        }
    }
}

/// A parameter's type as written, spaced as rustfmt would (`Vec<i64>`, `Option<&str>`).
fn type_name(ty: &Type) -> String {
    let mut text = quote!(#ty).to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("[ ", "["),
        (" ]", "]"),
        ("( ", "("),
        (" )", ")"),
        (" ;", ";"),
    ] {
        text = text.replace(from, to);
    }
    text
}

//! `#[unirun::remote]`: registers a `fn(A) -> R` under its module path, so
//! cluster workers (the same binary on other hosts) find it by name.
//!
//! The function stays as written, made `#[inline(never)]` and given a
//! `static` of its own that its body touches: so it has exactly one
//! address in any build (no per-codegen-unit copies) and no other
//! function can share it (identical bodies are not merged, their statics
//! differ). Next to it goes one `inventory::submit!` of a
//! `unirun::cluster::__private::Remote` naming it (module path, name and
//! line, so two nested functions of one name differ), its address (so a
//! `fn` pointer given to `Run::call` finds its name), its argument and
//! result types, and how to decode, call and encode.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

/// Expands `#[remote]` on `item`; `attr` must be empty.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(attr.span(), "#[unirun::remote] takes no arguments");
    }
    let mut function: ItemFn = match syn::parse2(item) {
        Ok(function) => function,
        Err(err) => return err.to_compile_error(),
    };
    let sig = &function.sig;
    let problem = if sig.asyncness.is_some() {
        Some("#[unirun::remote] needs a plain `fn(A) -> R`, not an `async fn`")
    } else if !sig.generics.params.is_empty() {
        Some("#[unirun::remote] needs a function without generic parameters: its name must stand for one function")
    } else if sig.inputs.len() != 1 {
        Some("#[unirun::remote] needs a function of exactly one argument (use a tuple or struct for more)")
    } else {
        None
    };
    if let Some(problem) = problem {
        return error(sig.span(), problem);
    }
    let inline = function.attrs.iter().find(|a| a.path().is_ident("inline"));
    let never =
        inline.is_some_and(|a| a.parse_args::<syn::Ident>().is_ok_and(|arg| arg == "never"));
    if let (Some(inline), false) = (inline, never) {
        return error(
            inline.span(),
            "#[unirun::remote] functions cannot be #[inline]: a remote function is found by its \
             one address, which inlining copies; remove the #[inline] attribute",
        );
    }
    let arg = match sig.inputs.first() {
        Some(FnArg::Typed(arg)) => &arg.ty,
        _ => return error(sig.inputs.span(), "#[unirun::remote] cannot take `self`"),
    };
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let ident = sig.ident.clone();
    let private = quote!(::unirun::cluster::__private);
    // A static of its own, touched by the body: the body differs from every
    // other function's, so no optimizer merges two remote functions.
    let body = &function.block;
    function.block = syn::parse_quote!({
        static UNIRUN_REMOTE_IDENTITY: u8 = 0;
        ::core::hint::black_box(&UNIRUN_REMOTE_IDENTITY);
        #body
    });
    if !never {
        function.attrs.push(syn::parse_quote!(#[inline(never)]));
    }
    quote! {
        #function

        #private::inventory::submit! {
            #private::Remote {
                name: ::core::concat!(
                    ::core::module_path!(), "::", ::core::stringify!(#ident), ":", ::core::line!()
                ),
                address: || #ident as fn(#arg) -> #ret as usize,
                types: #private::types::<#arg, #ret>,
                invoke: |bytes| #private::invoke(#ident as fn(#arg) -> #ret, bytes),
            }
        }
    }
}

fn error(span: proc_macro2::Span, message: &str) -> TokenStream {
    quote_spanned!(span => ::core::compile_error!(#message);)
}

#[cfg(test)]
mod tests {
    use super::expand;
    use quote::quote;

    #[test]
    fn a_plain_function_is_kept_and_registered_under_its_module_path() {
        let out = expand(
            quote!(),
            quote!(
                fn square(x: u64) -> u64 {
                    x * x
                }
            ),
        )
        .to_string();
        assert!(
            out.starts_with("# [inline (never)] fn square (x : u64) -> u64"),
            "{out}"
        );
        assert!(out.contains("inventory :: submit !"), "{out}");
        assert!(out.contains(":: core :: module_path ! ()"), "{out}");
        assert!(out.contains(":: core :: line ! ()"), "{out}");
        assert!(out.contains("square as fn (u64) -> u64"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn a_function_without_a_return_type_returns_unit() {
        let out = expand(
            quote!(),
            quote!(
                fn log(line: String) {}
            ),
        )
        .to_string();
        assert!(out.contains("log as fn (String) -> ()"), "{out}");
    }

    /// Two functions of identical bodies cannot be merged into one address:
    /// each body touches a static of its own first, and none is inlined.
    #[test]
    fn each_body_touches_a_static_of_its_own_and_is_never_inlined() {
        let body = quote!(
            fn mix(x: u64) -> u64 {
                x.wrapping_mul(3)
            }
        );
        let out = expand(quote!(), body).to_string();
        assert!(
            out.contains("static UNIRUN_REMOTE_IDENTITY : u8 = 0 ; :: core :: hint :: black_box (& UNIRUN_REMOTE_IDENTITY) ;"),
            "{out}"
        );
        assert!(out.contains("x . wrapping_mul (3)"), "{out}");
        // A user's own #[inline(never)] is kept, not doubled.
        let out = expand(
            quote!(),
            quote!(
                #[inline(never)]
                fn mix(x: u64) -> u64 {
                    x
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("inline").count(), 1, "{out}");
    }

    /// Each misuse is a `compile_error!` saying what `remote` needs.
    #[test]
    fn misuses_say_what_remote_needs() {
        let cases = [
            (
                quote!(retries = 3),
                quote!(
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
                "takes no arguments",
            ),
            (
                quote!(),
                quote!(
                    async fn f(x: u8) -> u8 {
                        x
                    }
                ),
                "not an `async fn`",
            ),
            (
                quote!(),
                quote!(
                    fn f<T>(x: T) -> T {
                        x
                    }
                ),
                "without generic parameters",
            ),
            (
                quote!(),
                quote!(
                    fn f(a: u8, b: u8) -> u8 {
                        a + b
                    }
                ),
                "exactly one argument",
            ),
            (
                quote!(),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
                "exactly one argument",
            ),
            (
                quote!(),
                quote!(
                    #[inline]
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
                "cannot be #[inline]",
            ),
            (
                quote!(),
                quote!(
                    #[inline(always)]
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
                "cannot be #[inline]",
            ),
        ];
        for (attr, item, message) in cases {
            let out = expand(attr, item).to_string();
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "expected {message:?} in {out}");
        }
    }
}

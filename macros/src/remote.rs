//! `#[unirun::remote]`: registers a `fn(A) -> R` under its module path, so
//! cluster workers (the same binary on other hosts) find it by name.
//!
//! The function stays as written; next to it goes one `inventory::submit!`
//! of a `unirun::cluster::__private::Remote` naming it, its address (so a
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
    let function: ItemFn = match syn::parse2(item) {
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
    let arg = match sig.inputs.first() {
        Some(FnArg::Typed(arg)) => &arg.ty,
        _ => return error(sig.inputs.span(), "#[unirun::remote] cannot take `self`"),
    };
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let ident = &sig.ident;
    let private = quote!(::unirun::cluster::__private);
    quote! {
        #function

        #private::inventory::submit! {
            #private::Remote {
                name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
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

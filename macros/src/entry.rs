//! `#[unirun::main]` and `#[unirun::test]`: an `async fn` whose body runs
//! in `unirun::block_on`.
//!
//! Both rewrite `async fn name() -> R { body }` into
//! `fn name() -> R { ::unirun::block_on(async move { body }) }` (the test
//! form with `#[test]` in front), keeping the function's other attributes,
//! visibility and return type. They take no arguments.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{parse2, Error, ItemFn};

/// Which attribute is being expanded.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    Main,
    Test,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "#[unirun::main]",
            Entry::Test => "#[unirun::test]",
        }
    }
}

/// Expands `entry` on `item`; a misuse becomes a `compile_error!` that
/// names the attribute and what it accepts.
pub(crate) fn expand(entry: Entry, args: TokenStream, item: TokenStream) -> TokenStream {
    match rewrite(entry, args, item) {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

fn rewrite(entry: Entry, args: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    if !args.is_empty() {
        return Err(Error::new_spanned(
            args,
            format!(
                "{} takes no arguments; configure unirun with unirun::configure(..) \
                 or the UNIRUN_* environment variables",
                entry.name()
            ),
        ));
    }
    let mut function: ItemFn = parse2(item)?;
    let sig = &mut function.sig;
    if sig.asyncness.take().is_none() {
        return Err(Error::new_spanned(
            sig.fn_token,
            format!("{} goes on an `async fn`", entry.name()),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new_spanned(
            &sig.inputs,
            format!("{} goes on a function without arguments", entry.name()),
        ));
    }
    if matches!(entry, Entry::Main) && sig.ident != "main" {
        return Err(Error::new(
            Span::call_site(),
            "#[unirun::main] goes on `async fn main`",
        ));
    }
    let body = &function.block;
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    let test = match entry {
        Entry::Test => quote!(#[::core::prelude::v1::test]),
        Entry::Main => quote!(),
    };
    Ok(quote! {
        #test
        #(#attrs)*
        #vis #sig {
            ::unirun::block_on(async move #body)
        }
    })
}

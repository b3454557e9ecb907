//! The running executable's GNU build-id: the note the linker writes into
//! an ELF file, a hash of its contents. Two processes of one build share
//! it; a rebuild changes it.

/// The build-id of the running executable, if it has one (Linux and the
/// BSDs, linked with `--build-id`, as the usual toolchains do by default);
/// `None` elsewhere.
///
/// # Examples
///
/// ```
/// if let Some(id) = unirun_platform::build_id::build_id() {
///     assert!(!id.is_empty());
/// }
/// ```
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
pub fn build_id() -> Option<Vec<u8>> {
    /// Looks at the first loaded object only, the executable.
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        found: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration
        // of the call, and `found` is the `&mut Option<Vec<u8>>` given below.
        let (info, found) = unsafe { (&*info, &mut *found.cast::<Option<Vec<u8>>>()) };
        if info.dlpi_phdr.is_null() {
            return 1;
        }
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of a
        // loaded object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        for header in headers.iter().filter(|h| h.p_type == libc::PT_NOTE) {
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            // SAFETY: a PT_NOTE segment is loaded (readable) at the object's
            // base plus its virtual address, `p_memsz` bytes long.
            let notes =
                unsafe { std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize) };
            if let Some(id) = gnu_build_id(notes) {
                *found = Some(id.to_vec());
                break;
            }
        }
        // Non-zero: stop after the executable.
        1
    }
    let mut found: Option<Vec<u8>> = None;
    // SAFETY: `first` matches the callback type and only reads what the
    // loader hands it; `found` outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(first), (&raw mut found).cast());
    }
    found
}

/// The build-id of the running executable: `None` on this platform.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
pub fn build_id() -> Option<Vec<u8>> {
    None
}

/// The descriptor of the `NT_GNU_BUILD_ID` note among `notes` (an ELF note
/// segment: 4-byte aligned name size, descriptor size, type, name,
/// descriptor), if any.
#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    )),
    allow(dead_code)
)]
fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: usize = 3;
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let word = |at: usize| {
            let bytes: [u8; 4] = notes[at..at + 4].try_into().ok()?;
            usize::try_from(u32::from_ne_bytes(bytes)).ok()
        };
        let (name_size, desc_size, kind) = (word(0)?, word(4)?, word(8)?);
        let name_end = 12usize.checked_add(name_size)?;
        let desc_start = align(name_end)?;
        let desc_end = desc_start.checked_add(desc_size)?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && &notes[12..name_end] == b"GNU\0" {
            return Some(&notes[desc_start..desc_end]);
        }
        notes = &notes[align(desc_end)?.min(notes.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: u32, name: &[u8], desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [name.len() as u32, desc.len() as u32, kind] {
            out.extend(word.to_ne_bytes());
        }
        out.extend(name);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend(desc);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    #[test]
    fn the_gnu_build_id_note_is_found_among_others() {
        let mut notes = note(1, b"GNU\0", &[9; 16]);
        notes.extend(note(3, b"Go\0", &[8; 5]));
        notes.extend(note(3, b"GNU\0", &[1, 2, 3, 4, 5]));
        assert_eq!(gnu_build_id(&notes), Some(&[1, 2, 3, 4, 5][..]));
        assert_eq!(gnu_build_id(&notes[..notes.len() - 4]), None, "cut short");
        assert_eq!(gnu_build_id(&note(1, b"GNU\0", &[1])), None);
    }

    /// This test binary was linked with a build-id (rustc's linkers on
    /// Linux write one by default).
    #[cfg(target_os = "linux")]
    #[test]
    fn this_executable_has_a_build_id() {
        let id = build_id().expect("a build-id note");
        assert!(id.len() >= 8, "{id:?}");
        assert_eq!(build_id(), Some(id));
    }
}

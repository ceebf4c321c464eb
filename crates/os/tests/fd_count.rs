//! `proc::fd_count` of this process follows the descriptors it opens and closes.
//!
//! Alone in its own test binary: no other test opens descriptors meanwhile.

#[cfg(target_os = "linux")]
#[test]
fn the_descriptor_count_follows_opens_and_closes() {
    use ringport_os::proc::fd_count;
    let me = std::process::id();
    let before = fd_count(me).unwrap();
    assert!(before >= 3, "{before}");
    let files: Vec<_> = (0..10)
        .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
        .collect();
    assert_eq!(fd_count(me).unwrap(), before + 10);
    drop(files);
    assert_eq!(fd_count(me).unwrap(), before);
}

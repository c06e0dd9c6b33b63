// Parser threads allocate event fields and the correlator thread frees them; glibc's malloc
// spent a fifth of verify's time on that hand-off, mimalloc's per-thread free lists do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

fn main() -> std::process::ExitCode {
    return_freed_memory_soon();
    claimcheck::cli::main()
}

/// mimalloc v3's `mi_option_purge_delay` (`include/mimalloc.h`; the Rust binding names no
/// constant for it). `tests::the_purge_delay_option_is_the_one_set` fails if it moves.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed stays mapped for reuse before it goes back to the OS, in ms.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// How often the purge thread gives back what has been free for [`PURGE_DELAY_MS`].
const PURGE_EVERY: Duration = Duration::from_millis(250);

/// Makes mimalloc give freed pages back to the OS a tenth of a second after they are freed,
/// whatever the threads do then.
///
/// Not at once (a delay of 0, what this did before): `serve` frees and allocates its
/// per-batch buffers (lines read, events, outcome rows, statement arguments) many times a
/// second, and each one given back at once was faulted in and zeroed by the kernel again
/// for the next batch — 400,000 page faults in the tail benchmark, a quarter of the
/// runtime's CPU samples. With 100 ms: 250,000 faults, 9 % less CPU and 7 % more lines a
/// second, for 9 % more peak RSS (docs/speed-history.md).
///
/// Not only by mimalloc itself: it purges what is due only when some thread allocates a
/// fresh page, so after a burst (serve catching up a backlog) the idle threads kept the
/// burst's peak resident for good. A thread of its own asks it to, every [`PURGE_EVERY`]
/// (a purge of what is due covers the whole process, whichever thread asks).
fn return_freed_memory_soon() {
    // The only unsafe code in claimcheck: calls into the allocator's C API, which no safe
    // wrapper exposes (the env var `MIMALLOC_PURGE_DELAY` sets the delay too, but only when
    // set before the process starts).
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table; it takes no
    // pointers and may be called at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
    let purge = std::thread::Builder::new()
        .name("claimcheck-purge".to_owned())
        .spawn(|| {
            // mimalloc collects nothing for a thread that has never allocated.
            std::hint::black_box(Box::new(0u64));
            loop {
                // The allocator's own timer, not a wait for work: nothing signals it.
                std::thread::park_timeout(PURGE_EVERY);
                #[allow(unsafe_code)]
                // SAFETY: `mi_collect` takes no pointers and may be called from any thread.
                unsafe {
                    libmimalloc_sys::mi_collect(false);
                }
            }
        });
    // Without the thread, memory still goes back whenever a thread allocates a fresh page.
    drop(purge);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay: it holds v3's default (1000 ms) until
    /// set, and ours after.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        #[allow(unsafe_code)]
        // SAFETY: reads one value of mimalloc's option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000);
        return_freed_memory_soon();
        assert_eq!(get(), PURGE_DELAY_MS);
    }

    /// This process's resident set in kB, read without allocating (an allocation can make
    /// mimalloc purge, which would hide what the test looks for).
    fn rss_kb() -> u64 {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut f = std::fs::File::open("/proc/self/status").unwrap();
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let at = text.find("VmRSS:").unwrap() + "VmRSS:".len();
        let digits = text[at..].trim_start();
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap();
        digits[..end].parse().unwrap()
    }

    /// 64 MiB allocated, touched and freed by a thread that then idles (as a runtime's
    /// worker after a burst), every other thread idle too: the memory goes back to the OS
    /// within seconds. Without the purge thread it stays resident.
    #[test]
    fn memory_freed_before_every_thread_idles_goes_back_to_the_os() {
        return_freed_memory_soon();
        let (peak_tx, peak_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let blocks: Vec<Vec<u8>> = (0..2048).map(|i| vec![(i as u8) | 1; 32 << 10]).collect();
            let peak = rss_kb();
            drop(blocks);
            peak_tx.send(peak).unwrap();
            let _ = stop_rx.recv();
        });
        let peak = peak_rx.recv().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut now = rss_kb();
        while now + 48 * 1024 > peak && std::time::Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(20));
            now = rss_kb();
        }
        stop_tx.send(()).unwrap();
        worker.join().unwrap();
        assert!(
            now + 48 * 1024 <= peak,
            "RSS {now} kB 10 s after freeing 64 MiB at {peak} kB"
        );
    }
}
